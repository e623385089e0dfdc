-- Make-up cards (补签卡): an item kind whose order is fulfilled at once and later spent to fill
-- one missed sign-in day; the order records the day it repaired.
alter table reward_items add column kind text not null default 'goods';
alter table reward_orders add column used_day integer;
