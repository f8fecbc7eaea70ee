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
use uuid::Uuid;

/// What the seed made.
#[derive(Debug, Default)]
pub struct Seeded {
    pub organisations: usize,
    pub coalitions: usize,
    pub pledges: usize,
    pub updates: usize,
}

/// Places with a local council, care providers, user-led organisations, community groups and
/// an NHS body each.
const PLACES: [(&str, Region); 24] = [
    ("Gateshead", Region::NorthEast),
    ("Sunderland", Region::NorthEast),
    ("Durham", Region::NorthEast),
    ("Salford", Region::NorthWest),
    ("Wigan", Region::NorthWest),
    ("Bolton", Region::NorthWest),
    ("Leeds", Region::YorkshireAndTheHumber),
    ("Sheffield", Region::YorkshireAndTheHumber),
    ("Hull", Region::YorkshireAndTheHumber),
    ("Nottingham", Region::EastMidlands),
    ("Leicester", Region::EastMidlands),
    ("Derby", Region::EastMidlands),
    ("Birmingham", Region::WestMidlands),
    ("Coventry", Region::WestMidlands),
    ("Wolverhampton", Region::WestMidlands),
    ("Norwich", Region::EastOfEngland),
    ("Cambridge", Region::EastOfEngland),
    ("Hackney", Region::London),
    ("Camden", Region::London),
    ("Lambeth", Region::London),
    ("Brighton", Region::SouthEast),
    ("Kent", Region::SouthEast),
    ("Bristol", Region::SouthWest),
    ("Plymouth", Region::SouthWest),
];

const CHARITY_WORDS: [&str; 6] = [
    "Carers",
    "Independent Living",
    "Kinship",
    "Good Lives",
    "Neighbourhood",
    "Shared Lives",
];
const CHARITY_KINDS: [&str; 4] = ["Trust", "Alliance", "Network", "Foundation"];

/// Pledges people made on each change: title and what they will do.
fn pledge_text(change: Change, place: &str) -> (String, String) {
    match change {
        Change::CommunitiesWhereEveryoneBelongs => (
            format!("Community circles across {place}"),
            format!(
                "Start community circles in every ward of {place}, so people who draw on care are known by their neighbours and take part in local life."
            ),
        ),
        Change::LivingInThePlaceWeCallHome => (
            format!("Homes, not placements, in {place}"),
            format!(
                "Support everyone in {place} who is living in a hospital or placement far from home to move to a home of their own choosing."
            ),
        ),
        Change::LeadingTheLivesWeWantToLive => (
            format!("Direct payments that work in {place}"),
            format!(
                "Make direct payments and individual service funds simple to use in {place}, with peer support from people who use them."
            ),
        ),
        Change::MoreResourcesBetterUsed => (
            format!("Funding following people in {place}"),
            format!(
                "Move money from block contracts to flexible support people in {place} design with us, and publish what we spend."
            ),
        ),
        Change::SharingPowerAsEquals => (
            format!("Co-production board for {place}"),
            format!(
                "Share decisions about care in {place} with people who draw on it, paid as equals, from commissioning to checking results."
            ),
        ),
    }
}

const UPDATE_TEXT: [(&str, ProgressSignal); 6] = [
    (
        "Planning with people who draw on care is under way; the first meetings were well attended.",
        ProgressSignal::OnTrack,
    ),
    (
        "Recruited peer supporters and agreed the budget. On track for the next stage.",
        ProgressSignal::OnTrack,
    ),
    (
        "Staff shortages slowed us down this month; we are looking at what to change.",
        ProgressSignal::AtRisk,
    ),
    (
        "Halfway there: people are telling us what difference it makes.",
        ProgressSignal::OnTrack,
    ),
    (
        "Funding was cut and the work has stalled. We are asking partners for help.",
        ProgressSignal::OffTrack,
    ),
    (
        "Back on course after a difficult quarter.",
        ProgressSignal::OnTrack,
    ),
];

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

    // Organisations, each with an owner who acts for it.
    let mut orgs: Vec<Org> = Vec::new();
    let kinds = [
        OrganisationKind::Council,
        OrganisationKind::CareProvider,
        OrganisationKind::UserLedOrganisation,
        OrganisationKind::CommunityGroup,
        OrganisationKind::NhsBody,
    ];
    for (index, (place, region)) in PLACES.iter().enumerate() {
        for kind in kinds {
            let name = match kind {
                OrganisationKind::Council => format!("{place} Council"),
                OrganisationKind::CareProvider => format!("{place} Home Support"),
                OrganisationKind::UserLedOrganisation if index % 2 == 0 => {
                    format!("{place} Disabled People's Forum")
                }
                OrganisationKind::UserLedOrganisation => format!("{place} Carers' Voice"),
                OrganisationKind::CommunityGroup => format!("{place} Community Circles"),
                _ => format!("NHS {place} Integrated Care"),
            };
            orgs.push(organisation(db, &name, kind, *region, place, year_start).await?);
        }
    }
    for word in CHARITY_WORDS {
        for suffix in CHARITY_KINDS {
            let name = format!("{word} {suffix} UK");
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
    seeded.organisations = orgs.len();

    // One coalition of the willing per region, led by a council, joined by its neighbours.
    let mut coalition_members: Vec<(Uuid, Vec<usize>)> = Vec::new();
    let regions: Vec<Region> = {
        let mut regions: Vec<Region> = PLACES.iter().map(|(_, r)| *r).collect();
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
        seeded.coalitions += 1;
        let mut members = vec![lead];
        for (k, &other) in in_region.iter().filter(|i| **i != lead).take(5).enumerate() {
            let at = formed_at + TimeDelta::days(3 + k as i64);
            if k % 2 == 0 {
                let invited =
                    coalitions::invite(db, &orgs[lead].actor, coalition.id, orgs[other].id, at)
                        .await?;
                if k < 4 {
                    coalitions::accept(db, &orgs[other].actor, invited.id, at + TimeDelta::days(2))
                        .await?;
                    members.push(other);
                }
            } else {
                let asked = coalitions::request_to_join(
                    db,
                    &orgs[other].actor,
                    coalition.id,
                    orgs[other].id,
                    at,
                )
                .await?;
                coalitions::accept(db, &orgs[lead].actor, asked.id, at + TimeDelta::days(1))
                    .await?;
                members.push(other);
            }
        }
        coalition_members.push((coalition.id, members));
    }

    // Pledges: every organisation makes one, some two; coalition members pledge together.
    for (i, org) in orgs.iter().enumerate() {
        let count = if i % 3 == 0 { 2 } else { 1 };
        for p in 0..count {
            let change = Change::ALL[(i + 2 * p) % 5];
            let mut changes = vec![change];
            if dice.roll(3) == 0 {
                changes.push(Change::ALL[(i + 2 * p + 1) % 5]);
            }
            let coalition_id = coalition_members
                .iter()
                .find(|(_, members)| p == 0 && members.contains(&i))
                .map(|(id, _)| *id);
            let made_at = year_start + TimeDelta::days(30 + dice.roll(150) as i64);
            let (title, commitment) = pledge_text(change, org.place);
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
            seeded.pledges += 1;

            // A year of updates: most report every month or two; some go quiet; a few finish.
            let fate = dice.roll(10);
            if fate == 0 {
                pledges::withdraw(
                    db,
                    &org.actor,
                    pledge.id,
                    WithdrawalReason::parse("Our funding for this work ended; we are folding it into a partner's pledge.")?,
                    made_at + TimeDelta::days(90),
                )
                .await?;
                continue;
            }
            let stops_at = if fate <= 2 {
                now - TimeDelta::days(75)
            } else {
                now
            };
            let mut at = made_at + TimeDelta::days(20 + dice.roll(25) as i64);
            let mut percent: i32 = 0;
            while at < stops_at {
                percent = (percent + 10 + dice.roll(15) as i32).min(100);
                let done = fate == 9 && percent >= 60;
                let (body, signal) = if done {
                    (
                        "Done: what we pledged is in place, and people tell us it works.",
                        ProgressSignal::Done,
                    )
                } else {
                    UPDATE_TEXT[dice.roll(UPDATE_TEXT.len() as u64) as usize]
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
        }
    }

    // Coalitions report together, about every other month.
    for (coalition_id, members) in &coalition_members {
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
                    body: UpdateBody::parse(
                        "The coalition met with people who draw on care; we agreed the next joint steps and who leads each.",
                    )?,
                    signal: if turn % 4 == 3 { ProgressSignal::AtRisk } else { ProgressSignal::OnTrack },
                    percent_complete: None,
                    evidence_urls: EvidenceUrls::default(),
                    mark_achieved: false,
                },
                at,
            )
            .await?;
            seeded.updates += 1;
            turn += 1;
            at += TimeDelta::days(61);
        }
    }
    Ok(seeded)
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
