-- Who holds a channel's single live connection (the AI bot's long connection): one holder per
-- channel across replicas, renewed while connected, taken over once it expires.
create table channel_leases (
    channel_id text primary key,
    holder text not null,
    expires_at bigint not null
);
