-- The periodic job reads each member's days in a range (value layers, churn risk). With only
-- (member_id) and the (day, member_id) key, PostgreSQL without fresh statistics (autovacuum off,
-- or right after an import) scanned a month of the key per member: 13 s per 2,000 members.
-- (member_id, day) serves both `member_id = ?` and `member_id = ? and day between ? and ?`.
-- SQLite is unchanged: its plans were already per member (its index on member_id stores the day too).
create index member_daily_activity_member_day on member_daily_activity (member_id, day);
drop index member_daily_activity_member;
