-- What a team serving Groundswell's tables with PostGraphile 4 would add so its schema answers
-- the benchmark's pages: a custom query for the pledge wall, computed columns for the figures
-- Groundswell derives, and a smart comment for the one relation without a foreign key. Applied
-- by serve.js to the benchmark's own database before PostGraphile reads the schema; every
-- statement can run again.

-- The wall: pledges on a change, in the order they were made (PostGraphile pages it).
create or replace function wall_pledges(change text) returns setof pledges
language sql stable as $$
  select p.*
  from pledges p
  where exists (select 1 from pledge_changes c where c.pledge_id = p.id and c.change = wall_pledges.change)
  order by p.id
$$;

-- A pledge's changes, in the movement's order.
create or replace function pledges_changes(p pledges) returns text[]
language sql stable as $$
  select coalesce(array_agg(pc.change order by c.position), '{}')
  from pledge_changes pc join changes c on c.code = pc.change
  where pc.pledge_id = p.id
$$;

-- pledges.latest_update_id has no foreign key (the update also points at the pledge).
comment on table pledges is
  E'@foreignKey (latest_update_id) references progress_updates (id)|@fieldName latestUpdate';

-- The gathering's figures, as Groundswell defines them.
create or replace function gatherings_places_left(g gatherings) returns integer
language sql stable as $$
  select case
    when g.format = 'ONLINE' then
      case when g.online_capacity is null then null else greatest(g.online_capacity - g.online_taken, 0) end
    else
      case when g.in_person_capacity is null then null else greatest(g.in_person_capacity - g.in_person_taken, 0) end
  end
$$;

create or replace function gatherings_confirmed_count(g gatherings) returns integer
language sql stable as $$
  select count(*)::integer from registrations r where r.gathering_id = g.id and r.status = 'CONFIRMED'
$$;

create or replace function gatherings_waitlisted_count(g gatherings) returns integer
language sql stable as $$
  select count(*)::integer from registrations r where r.gathering_id = g.id and r.status = 'WAITLISTED'
$$;

create or replace function gatherings_confirmed_places(g gatherings) returns integer
language sql stable as $$
  select g.in_person_taken + g.online_taken
$$;

create or replace function gatherings_registration_open(g gatherings) returns boolean
language sql stable as $$
  select g.status = 'PUBLISHED'
    and (g.registration_opens_at is null or g.registration_opens_at <= now())
    and (g.registration_closes_at is null or now() < g.registration_closes_at)
    and now() < g.ends_at
$$;

-- The caller's own registration: the caller is the live session whose token's hash serve.js
-- put in the setting bench.token_hash.
create or replace function gatherings_viewer_registration(g gatherings) returns registrations
language sql stable as $$
  select r.*
  from sessions s
  join registrations r on r.gathering_id = g.id and r.person_id = s.person_id
  where s.token_hash = current_setting('bench.token_hash', true)
    and s.expires_at > now() and s.revoked_at is null
$$;

-- 1 for the first person waiting for this way of attending; null unless waitlisted.
create or replace function registrations_waitlist_position(r registrations) returns integer
language sql stable as $$
  select case when r.status = 'WAITLISTED' and r.waitlist_seq is not null then (
    select count(*)::integer + 1 from registrations w
    where w.gathering_id = r.gathering_id and w.mode = r.mode and w.status = 'WAITLISTED'
      and w.waitlist_seq < r.waitlist_seq
  ) end
$$;
