-- Message dedupe keys now lead with the platform message id (`msg:{MsgId}:{sender}`, was
-- `m:{sender}:{MsgId}`), so that new keys sit together in the inbox's unique index. Rows of
-- the last 24 hours get the new form, so that a platform retry of a message accepted just before
-- the upgrade is still recognized (WeCom retries within seconds; older rows can no longer be
-- retried and are pruned by inbox_retention_hours). A row is rewritten only when its key is
-- exactly `m:` + its sender + `:` + the id, so nothing is guessed. The new prefix cannot equal
-- any old key, so the rewrite never collides with a row not yet rewritten.
update inbox
set dedupe_key = 'msg:' || substr(dedupe_key, length(sender) + 4) || ':' || sender
where sender is not null
  and substr(dedupe_key, 1, length(sender) + 3) = 'm:' || sender || ':'
  and received_at >= (extract(epoch from now())::bigint - 86400) * 1000;
