-- In step with PostgreSQL's 0016, which adds an index on member_daily_activity (member_id, day).
-- Nothing to change here: this table is WITHOUT ROWID with the key (day, member_id), so its
-- index on member_id already stores (member_id, day), and SQLite searches it as
-- `member_id = ? and day > ? and day < ?` (checked with `explain query plan`).
select 1;
