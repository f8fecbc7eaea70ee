//! `groundswell seed`: a deterministic demo movement, loaded through the domain services (so
//! every rule and figure holds), for a newcomer's first queries to have something to show: the
//! five changes, organisations of every kind across England's regions, coalitions of the
//! willing, pledges and a year of progress updates.

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use groundswell_domain::{
    Actor, Database,
    changes::{Change, ChangeSet},
    coalitions::{self, Area, CoalitionName, NewCoalition, Purpose},
    organisations::{self, NewOrganisation, OrganisationKind, OrganisationName, Region},
    page::PageRequest,
    people::{self, EmailAddress, Role},
    pledges::{self, Commitment, NewPledge, PledgeTitle, WithdrawalReason},
    progress::{
        self, EvidenceUrls, NewProgressUpdate, PercentComplete, ProgressSignal, Subject, UpdateBody,
    },
    text::Slug,
};
use groundswell_samples as samples;
use uuid::Uuid;

/// What the seed made.
#[derive(Debug, Default)]
pub struct Seeded {
    pub organisations: usize,
    pub coalitions: usize,
    pub pledges: usize,
    pub updates: usize,
}

/// What the last update on a pledge that is done says.
const DONE_NOTE: &str = "Done: what we pledged is in place, and people tell us it works.";

/// What a coalition's members report together.
const COALITION_NOTE: &str = "The coalition met with people who draw on care; we agreed the next joint steps and who leads each.";

/// A small deterministic generator, so every seed is the same movement.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides.max(1)
    }
}

struct Org {
    id: Uuid,
    actor: Actor,
    place: &'static str,
    region: Region,
    kind: OrganisationKind,
}

/// Loads the demo movement into an empty database; refuses one that has organisations.
pub async fn seed(db: &Database, now: DateTime<Utc>) -> anyhow::Result<Seeded> {
    let existing = organisations::list(
        db,
        PageRequest {
            first: 1,
            after: None,
            count_total: true,
        },
    )
    .await?;
    let existing = existing.total_count.unwrap_or_default();
    if existing > 0 {
        bail!("the database already has {existing} organisations; seed only loads an empty one",);
    }
    let mut dice = Dice(2026);
    let mut seeded = Seeded::default();
    let year_start = now - TimeDelta::days(365);

    let orgs = organisations(db, year_start).await?;
    seeded.organisations = orgs.len();
    let coalition_members = coalitions(db, &orgs, year_start).await?;
    seeded.coalitions = coalition_members.len();

    // Pledges: every organisation makes one, some two; coalition members pledge together.
    for (i, org) in orgs.iter().enumerate() {
        let count = if i % 3 == 0 { 2 } else { 1 };
        for p in 0..count {
            let coalition_id = coalition_members
                .iter()
                .find(|(_, members)| p == 0 && members.contains(&i))
                .map(|(id, _)| *id);
            let made = pledge(db, &mut dice, org, i + 2 * p, coalition_id, year_start).await?;
            seeded.pledges += 1;
            report_on_pledge(db, &mut dice, org, i, made, now, &mut seeded).await?;
        }
    }

    seeded.updates += report_on_coalitions(db, &orgs, &coalition_members, year_start, now).await?;
    Ok(seeded)
}

/// Every place's council, care provider, user-led organisation, community group and NHS body,
/// then the national charities, each with an owner who acts for it.
async fn organisations(db: &Database, year_start: DateTime<Utc>) -> anyhow::Result<Vec<Org>> {
    let mut orgs: Vec<Org> = Vec::new();
    let kinds = [
        OrganisationKind::Council,
        OrganisationKind::CareProvider,
        OrganisationKind::UserLedOrganisation,
        OrganisationKind::CommunityGroup,
        OrganisationKind::NhsBody,
    ];
    for (index, (place, region)) in samples::PLACES.iter().enumerate() {
        for kind in kinds {
            // Each place takes the next ending in turn, so neighbours' names differ.
            let endings = samples::local_name_endings(kind);
            let name = samples::local_name(kind, place, endings[index % endings.len()]);
            orgs.push(organisation(db, &name, kind, *region, place, year_start).await?);
        }
    }
    for word in samples::CHARITY_WORDS {
        for suffix in samples::CHARITY_KINDS {
            let name = samples::charity_name(word, suffix);
            orgs.push(
                organisation(
                    db,
                    &name,
                    OrganisationKind::NationalCharity,
                    Region::National,
                    "England",
                    year_start,
                )
                .await?,
            );
        }
    }
    Ok(orgs)
}

/// One coalition of the willing per region, led by a council, joined by its neighbours: each
/// coalition's id and its members (indices into `orgs`, the lead first).
async fn coalitions(
    db: &Database,
    orgs: &[Org],
    year_start: DateTime<Utc>,
) -> anyhow::Result<Vec<(Uuid, Vec<usize>)>> {
    let mut coalition_members: Vec<(Uuid, Vec<usize>)> = Vec::new();
    let regions: Vec<Region> = {
        let mut regions: Vec<Region> = samples::PLACES.iter().map(|(_, r)| *r).collect();
        regions.dedup();
        regions
    };
    for (n, region) in regions.iter().enumerate() {
        let in_region: Vec<usize> = (0..orgs.len())
            .filter(|i| orgs[*i].region == *region)
            .collect();
        let Some(&lead) = in_region
            .iter()
            .find(|i| orgs[**i].kind == OrganisationKind::Council)
        else {
            continue;
        };
        let change = Change::ALL[n % 5];
        let area = orgs[lead].place;
        let formed_at = year_start + TimeDelta::days(20 + 9 * n as i64);
        let coalition = coalitions::form(
            db,
            &orgs[lead].actor,
            NewCoalition {
                organisation_id: orgs[lead].id,
                name: CoalitionName::parse(&format!("{area} and neighbours: {}", change.title()))?,
                slug: Slug::from_name(&format!("{area} {}", change.title()))?,
                purpose: Purpose::parse(&format!(
                    "Councils, providers, the NHS and people who draw on care in and around {area} acting together on \"{}\".",
                    change.title()
                ))?,
                area: Some(Area::parse(&format!("{area} and surrounding areas"))?),
                changes: ChangeSet::parse([change, Change::ALL[(n + 2) % 5]])?,
            },
            formed_at,
        )
        .await
        .context("forming a coalition")?;
        let others: Vec<usize> = in_region.into_iter().filter(|i| *i != lead).collect();
        let mut members = vec![lead];
        members.extend(join(db, orgs, lead, &others, coalition.id, formed_at).await?);
        coalition_members.push((coalition.id, members));
    }
    Ok(coalition_members)
}

/// Up to five of `others` join the lead's coalition in turn: by invitation (the fifth invited
/// never answers) or by asking. Returns those who became members.
async fn join(
    db: &Database,
    orgs: &[Org],
    lead: usize,
    others: &[usize],
    coalition_id: Uuid,
    formed_at: DateTime<Utc>,
) -> anyhow::Result<Vec<usize>> {
    let mut members = Vec::new();
    for (k, &other) in others.iter().take(5).enumerate() {
        let at = formed_at + TimeDelta::days(3 + k as i64);
        if k % 2 == 0 {
            let invited =
                coalitions::invite(db, &orgs[lead].actor, coalition_id, orgs[other].id, at).await?;
            if k < 4 {
                coalitions::accept(db, &orgs[other].actor, invited.id, at + TimeDelta::days(2))
                    .await?;
                members.push(other);
            }
        } else {
            let asked = coalitions::request_to_join(
                db,
                &orgs[other].actor,
                coalition_id,
                orgs[other].id,
                at,
            )
            .await?;
            coalitions::accept(db, &orgs[lead].actor, asked.id, at + TimeDelta::days(1)).await?;
            members.push(other);
        }
    }
    Ok(members)
}

/// A pledge the seed made, and when.
#[derive(Clone, Copy)]
struct Made {
    id: Uuid,
    at: DateTime<Utc>,
}

/// `org`'s pledge on the `nth` change (counting round the five), sometimes on the next one
/// too, made in the year's first half.
async fn pledge(
    db: &Database,
    dice: &mut Dice,
    org: &Org,
    nth: usize,
    coalition_id: Option<Uuid>,
    year_start: DateTime<Utc>,
) -> anyhow::Result<Made> {
    let change = Change::ALL[nth % 5];
    let mut changes = vec![change];
    if dice.roll(3) == 0 {
        changes.push(Change::ALL[(nth + 1) % 5]);
    }
    let made_at = year_start + TimeDelta::days(30 + dice.roll(150) as i64);
    let (title, commitment) = samples::pledge_text(change, org.place);
    let pledge = pledges::make(
        db,
        &org.actor,
        NewPledge {
            organisation_id: org.id,
            coalition_id,
            changes: ChangeSet::parse(changes)?,
            title: PledgeTitle::parse(&title)?,
            commitment: Commitment::parse(&commitment)?,
            due_by: Some(groundswell_domain::time::Day::new(
                (made_at + TimeDelta::days(300 + dice.roll(120) as i64)).date_naive(),
            )?),
        },
        made_at,
    )
    .await
    .context("making a pledge")?;
    Ok(Made {
        id: pledge.id,
        at: made_at,
    })
}

/// A year of updates on one pledge of the `i`th organisation: most report every month or two;
/// some go quiet; a few finish; one in ten is withdrawn instead.
async fn report_on_pledge(
    db: &Database,
    dice: &mut Dice,
    org: &Org,
    i: usize,
    pledge: Made,
    now: DateTime<Utc>,
    seeded: &mut Seeded,
) -> anyhow::Result<()> {
    let fate = dice.roll(10);
    if fate == 0 {
        let reason = samples::WITHDRAWAL_REASONS[i % samples::WITHDRAWAL_REASONS.len()];
        pledges::withdraw(
            db,
            &org.actor,
            pledge.id,
            WithdrawalReason::parse(reason)?,
            pledge.at + TimeDelta::days(90),
        )
        .await?;
        return Ok(());
    }
    let stops_at = if fate <= 2 {
        now - TimeDelta::days(75)
    } else {
        now
    };
    let mut at = pledge.at + TimeDelta::days(20 + dice.roll(25) as i64);
    let mut percent: i32 = 0;
    while at < stops_at {
        percent = (percent + 10 + dice.roll(15) as i32).min(100);
        let done = fate == 9 && percent >= 60;
        let (body, signal) = if done {
            (DONE_NOTE, ProgressSignal::Done)
        } else {
            samples::PROGRESS_NOTES[dice.roll(samples::PROGRESS_NOTES.len() as u64) as usize]
        };
        let evidence: Vec<String> = if dice.roll(3) == 0 {
            vec![format!(
                "https://{}.example/updates/{}",
                org.place.to_lowercase(),
                seeded.updates
            )]
        } else {
            Vec::new()
        };
        progress::post(
            db,
            &org.actor,
            NewProgressUpdate {
                subject: Subject::Pledge(pledge.id),
                organisation_id: None,
                body: UpdateBody::parse(body)?,
                signal,
                percent_complete: Some(PercentComplete::parse(if done {
                    100
                } else {
                    percent.min(95)
                })?),
                evidence_urls: EvidenceUrls::parse(evidence.iter().map(String::as_str))?,
                mark_achieved: true,
            },
            at,
        )
        .await
        .context("posting an update")?;
        seeded.updates += 1;
        if done {
            break;
        }
        at += TimeDelta::days(40 + dice.roll(20) as i64);
    }
    Ok(())
}

/// Coalitions report together, about every other month, their members taking turns; returns
/// how many updates they posted.
async fn report_on_coalitions(
    db: &Database,
    orgs: &[Org],
    coalition_members: &[(Uuid, Vec<usize>)],
    year_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut posted = 0;
    for (coalition_id, members) in coalition_members {
        let mut at = year_start + TimeDelta::days(60);
        let mut turn = 0;
        while at < now {
            let poster = &orgs[members[turn % members.len()]];
            progress::post(
                db,
                &poster.actor,
                NewProgressUpdate {
                    subject: Subject::Coalition(*coalition_id),
                    organisation_id: Some(poster.id),
                    body: UpdateBody::parse(COALITION_NOTE)?,
                    signal: if turn % 4 == 3 {
                        ProgressSignal::AtRisk
                    } else {
                        ProgressSignal::OnTrack
                    },
                    percent_complete: None,
                    evidence_urls: EvidenceUrls::default(),
                    mark_achieved: false,
                },
                at,
            )
            .await?;
            posted += 1;
            turn += 1;
            at += TimeDelta::days(61);
        }
    }
    Ok(posted)
}

async fn organisation(
    db: &Database,
    name: &str,
    kind: OrganisationKind,
    region: Region,
    place: &'static str,
    at: DateTime<Utc>,
) -> anyhow::Result<Org> {
    let slug = Slug::from_name(name)?;
    let email = EmailAddress::parse(&format!("owner@{slug}.example"))?;
    let person = people::grant_role(db, &email, Role::Attendee, at).await?;
    // The command acts as each organisation's owner, as a signed-in owner would.
    let actor = Actor::Person {
        person_id: person.id,
        role: Role::Attendee,
        session_id: Uuid::nil(),
    };
    let organisation = organisations::create(
        db,
        &actor,
        NewOrganisation {
            name: OrganisationName::parse(name)?,
            slug,
            kind,
            region,
            website: None,
        },
        at,
    )
    .await
    .with_context(|| format!("creating {name}"))?;
    Ok(Org {
        id: organisation.id,
        actor,
        place,
        region,
        kind,
    })
}
