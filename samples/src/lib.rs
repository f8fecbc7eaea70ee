//! Sample data for the seeds: the places, organisation names, pledges, progress notes and
//! withdrawal reasons that both the demo seed (`groundswell seed`, through the domain's
//! services) and the scale seed (`groundswell-bench seed`, straight to the tables) draw from, so
//! the two movements read alike and a wording is changed in one place.
//!
//! Text only, no rules: the domain's own types (changes, regions, kinds, signals) say what each
//! sample is. The scale seed picks from these lists with its seeded random source, so a list's
//! length and order are part of the benchmark's data: the same seed loads the same movement
//! only while they stay as they are.

use groundswell_domain::{
    changes::Change, organisations::OrganisationKind, organisations::Region,
    progress::ProgressSignal,
};

/// Places with a local council, care providers, user-led organisations, community groups and
/// an NHS body, each in its region; a region's places stand together.
pub const PLACES: [(&str, Region); 24] = [
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

/// What a national charity's name is about ("Carers"), before its kind ("Trust").
pub const CHARITY_WORDS: [&str; 6] = [
    "Carers",
    "Independent Living",
    "Kinship",
    "Good Lives",
    "Neighbourhood",
    "Shared Lives",
];

/// What kind of body a national charity is, the last word of its name.
pub const CHARITY_KINDS: [&str; 4] = ["Trust", "Alliance", "Network", "Foundation"];

/// A national charity's name: "Carers Trust".
pub fn charity_name(word: &str, kind: &str) -> String {
    format!("{word} {kind}")
}

/// How local organisations of `kind` end their names after the place ("City Council"); none
/// for the kinds that are not local.
pub fn local_name_endings(kind: OrganisationKind) -> &'static [&'static str] {
    match kind {
        OrganisationKind::Council => &["Council", "City Council", "Borough Council"],
        OrganisationKind::CareProvider => &[
            "Home Care",
            "Supported Living",
            "Care Partnership",
            "Homeshare",
        ],
        OrganisationKind::UserLedOrganisation => &[
            "Disabled People's Forum",
            "People First",
            "Independent Living Hub",
            "Carers Voice",
        ],
        OrganisationKind::CommunityGroup => &[
            "Good Neighbours",
            "Community Circle",
            "Men's Shed",
            "Befriending Network",
            "Time Bank",
        ],
        OrganisationKind::NhsBody => &["Integrated Care Board", "Community Trust"],
        OrganisationKind::NationalCharity | OrganisationKind::Other => &[],
    }
}

/// A local organisation's name: the place and an ending of `local_name_endings`, with "NHS"
/// first for an NHS body ("NHS Leeds Community Trust").
pub fn local_name(kind: OrganisationKind, place: &str, ending: &str) -> String {
    if kind == OrganisationKind::NhsBody {
        format!("NHS {place} {ending}")
    } else {
        format!("{place} {ending}")
    }
}

/// A pledge on `change` made in `place`: its title and what will be done.
pub fn pledge_text(change: Change, place: &str) -> (String, String) {
    match change {
        Change::CommunitiesWhereEveryoneBelongs => (
            format!("Community circles across {place}"),
            format!(
                "Start community circles in every ward of {place}, so people who draw on care are known by their neighbours and take part in local life."
            ),
        ),
        Change::LivingInThePlaceWeCallHome => (
            format!("Home first in {place}"),
            format!(
                "Support people in {place} to live in their own homes with the people and things they love, and move no one into residential care who does not choose it."
            ),
        ),
        Change::LeadingTheLivesWeWantToLive => (
            format!("Direct payments that work in {place}"),
            format!(
                "Make direct payments and individual service funds in {place} simple to take up and flexible to use, with peer support for everyone who holds one."
            ),
        ),
        Change::MoreResourcesBetterUsed => (
            format!("Shift spend to prevention in {place}"),
            format!(
                "Move a growing share of the care budget in {place} into early, community-based support, and publish where the money goes each quarter."
            ),
        ),
        Change::SharingPowerAsEquals => (
            format!("Co-production board in {place}"),
            format!(
                "Set up a co-production board in {place} where people who draw on care hold half the seats and an equal vote on how support is designed."
            ),
        ),
    }
}

/// Progress notes on a pledge, each with the signal it reads as.
pub const PROGRESS_NOTES: [(&str, ProgressSignal); 8] = [
    (
        "We met with people who draw on care and their families to shape the next step.",
        ProgressSignal::OnTrack,
    ),
    (
        "The first circles have started meeting; more neighbours are joining each month.",
        ProgressSignal::OnTrack,
    ),
    (
        "Recruitment of personal assistants is slower than planned, so we are widening the pool.",
        ProgressSignal::AtRisk,
    ),
    (
        "Funding for the next phase is agreed; the work continues on the timetable we set.",
        ProgressSignal::OnTrack,
    ),
    (
        "We published what we spent this quarter and what changed for the people involved.",
        ProgressSignal::OnTrack,
    ),
    (
        "A co-production session reviewed the plan and changed two of its priorities.",
        ProgressSignal::OnTrack,
    ),
    (
        "Staff turnover has held us back; we are rebuilding the team with local people.",
        ProgressSignal::OffTrack,
    ),
    (
        "The evaluation shows more people living at home with the support they chose.",
        ProgressSignal::OnTrack,
    ),
];

/// Why an organisation withdrew a pledge.
pub const WITHDRAWAL_REASONS: [&str; 4] = [
    "Our funding for this work ended; we will pledge again when it is restored.",
    "The organisation merged and the new board is reviewing its commitments.",
    "This work moved to a coalition pledge that replaces it.",
    "We could not recruit the staff to deliver it and would rather say so plainly.",
];

#[cfg(test)]
mod tests {
    use groundswell_domain::{
        organisations::OrganisationName,
        pledges::{Commitment, PledgeTitle, WithdrawalReason},
        progress::UpdateBody,
    };

    use super::*;

    /// The scale seed writes these straight to the tables, past the domain's parsing: each must
    /// be something the domain would have accepted.
    #[test]
    fn every_sample_is_what_the_domain_accepts() -> Result<(), groundswell_domain::InvalidInput> {
        for (place, _) in PLACES {
            for kind in [
                OrganisationKind::Council,
                OrganisationKind::CareProvider,
                OrganisationKind::UserLedOrganisation,
                OrganisationKind::CommunityGroup,
                OrganisationKind::NhsBody,
            ] {
                assert!(!local_name_endings(kind).is_empty(), "{kind:?}");
                for ending in local_name_endings(kind) {
                    OrganisationName::parse(&local_name(kind, place, ending))?;
                }
            }
            for change in Change::ALL {
                let (title, commitment) = pledge_text(change, place);
                PledgeTitle::parse(&title)?;
                Commitment::parse(&commitment)?;
            }
        }
        for word in CHARITY_WORDS {
            for kind in CHARITY_KINDS {
                OrganisationName::parse(&charity_name(word, kind))?;
            }
        }
        for (note, _) in PROGRESS_NOTES {
            UpdateBody::parse(note)?;
        }
        for reason in WITHDRAWAL_REASONS {
            WithdrawalReason::parse(reason)?;
        }
        Ok(())
    }
}
