-- Redemption (积分兑换): a catalog seeded from the configuration, and orders paid through the ledger.

create table reward_items (
    id integer primary key,
    name text not null unique,
    cost bigint not null check (cost > 0),
    stock bigint not null check (stock >= 0),
    per_member_limit bigint not null default 0,
    enabled boolean not null default true,
    created_at bigint not null
);

create table reward_orders (
    id integer primary key,
    item_id bigint not null references reward_items (id),
    member_id bigint not null references members (id),
    cost bigint not null,
    status text not null default 'pending',
    -- The chat message that placed the order: a retried delivery places it once.
    source_key text not null unique,
    created_at bigint not null,
    updated_at bigint not null
);
create index reward_orders_member_item on reward_orders (member_id, item_id);
create index reward_orders_status on reward_orders (status, created_at);
