-- The inbox is read by its keys (id, channel + dedupe key) and by the unprocessed index; column
-- statistics on it steer no plan. With the default target ANALYZE samples 30,000 rows, which from
-- about that size on means reading the whole table, 1 KiB payloads included: 140 ms at 50,000
-- rows here, long enough to stall the group commit on a two-core machine. A target of 10 samples
-- 3,000 rows (20 ms) and still gives the planner the table's size; payload and reply get none.
alter table inbox alter column id set statistics 10;
alter table inbox alter column channel_id set statistics 10;
alter table inbox alter column dedupe_key set statistics 10;
alter table inbox alter column kind set statistics 10;
alter table inbox alter column sender set statistics 10;
alter table inbox alter column group_id set statistics 10;
alter table inbox alter column occurred_at set statistics 10;
alter table inbox alter column received_at set statistics 10;
alter table inbox alter column processed_at set statistics 10;
alter table inbox alter column payload set statistics 0;
alter table inbox alter column reply set statistics 0;
