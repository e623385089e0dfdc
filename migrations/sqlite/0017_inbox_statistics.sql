-- PostgreSQL only (per-column statistics targets for the inbox); SQLite's ANALYZE is not run by
-- Yunying. Kept so that both backends carry the same migration list.
select 1;
