-- Value layers (RFM): each member's recency, frequency and monetary scores (1-5 each), their sum
-- and the layer it maps to, recomputed periodically.

create table member_layers (
    member_id bigint primary key references members (id),
    recency integer not null,
    frequency integer not null,
    monetary integer not null,
    score integer not null,
    layer text not null,
    computed_at bigint not null
) without rowid;
create index member_layers_layer on member_layers (layer);
