//! Generations of public data: a counter per area of what anyone may read, bumped by every
//! write transaction that could change that area, once it has committed. A cache of public
//! answers remembers the generations it saw before it read and serves an answer only while
//! they are unchanged, so a write is never followed by a stale answer on the server that wrote.
//!
//! On PostgreSQL a write also sends the areas it touched on [`CHANNEL`] from inside its
//! transaction (so the notice goes out only if it commits); every server listens and bumps its
//! own counters, which bounds staleness across servers by the notification's delay.

use std::sync::atomic::{AtomicU64, Ordering};

/// The PostgreSQL channel public changes travel on.
pub const CHANNEL: &str = "groundswell_public_changes";

/// A set of areas of public data, as bit flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Areas(u8);

impl Areas {
    /// Nothing anyone else can read: sessions, sign-in links, mail, webhooks, API tokens,
    /// preferences, digest bookkeeping.
    pub const NONE: Areas = Areas(0);
    /// Gatherings with their places and counts (registrations change them).
    pub const GATHERINGS: Areas = Areas(1);
    /// The movement: organisations, pledges, coalitions, progress and the five changes'
    /// figures.
    pub const MOVEMENT: Areas = Areas(1 << 1);
    /// Everything: the safe choice when unsure.
    pub const ALL: Areas = Areas(Self::GATHERINGS.0 | Self::MOVEMENT.0);

    const COUNT: usize = 2;

    pub const fn union(self, other: Areas) -> Areas {
        Areas(self.0 | other.0)
    }

    pub const fn contains(self, other: Areas) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bits, for a notification's payload.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Areas from bits; unknown bits (a newer server's areas) read as everything.
    pub const fn from_bits(bits: u8) -> Areas {
        if bits & !Self::ALL.0 != 0 {
            Self::ALL
        } else {
            Areas(bits)
        }
    }

    fn indices(self) -> impl Iterator<Item = usize> {
        (0..Self::COUNT).filter(move |i| self.0 & (1 << i) != 0)
    }
}

/// Every area's generation at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot([u64; Areas::COUNT]);

/// This process's counters, shared by every clone of a [`crate::Database`].
#[derive(Debug)]
pub struct Generations {
    counters: [AtomicU64; Areas::COUNT],
    /// Tells this process's own notifications apart from other servers'.
    origin: u64,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            counters: Default::default(),
            origin: rand::random(),
        }
    }
}

impl Generations {
    /// The generations now. Take it before reading what is to be cached.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(std::array::from_fn(|i| {
            self.counters[i].load(Ordering::SeqCst)
        }))
    }

    /// Whether nothing in `areas` has changed since `snapshot` was taken.
    pub fn unchanged_since(&self, snapshot: &Snapshot, areas: Areas) -> bool {
        areas
            .indices()
            .all(|i| self.counters[i].load(Ordering::SeqCst) == snapshot.0[i])
    }

    /// Records that `areas` changed (a write committed, here or on another server).
    pub fn bump(&self, areas: Areas) {
        for i in areas.indices() {
            self.counters[i].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The payload of a notification from this process about `areas`.
    pub(crate) fn payload(&self, areas: Areas) -> String {
        format!("{}:{}", self.origin, areas.bits())
    }

    /// Applies a notification read on [`CHANNEL`]; this process's own (already applied when
    /// they committed) are skipped, and one that cannot be read changes everything.
    pub fn apply_payload(&self, payload: &str) {
        let parsed = payload
            .split_once(':')
            .and_then(|(origin, bits)| Some((origin.parse::<u64>().ok()?, bits.parse().ok()?)));
        match parsed {
            Some((origin, _)) if origin == self.origin => {}
            Some((_, bits)) => self.bump(Areas::from_bits(bits)),
            None => self.bump(Areas::ALL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_stays_current_only_until_its_areas_change() {
        let generations = Generations::default();
        let before = generations.snapshot();
        generations.bump(Areas::GATHERINGS);
        assert!(!generations.unchanged_since(&before, Areas::GATHERINGS));
        assert!(generations.unchanged_since(&before, Areas::MOVEMENT));
        assert!(!generations.unchanged_since(&before, Areas::ALL));
        assert!(generations.unchanged_since(&before, Areas::NONE));
        generations.bump(Areas::NONE);
        assert!(generations.unchanged_since(&before, Areas::MOVEMENT));
    }

    #[test]
    fn notifications_from_elsewhere_bump_and_our_own_do_not() {
        let here = Generations::default();
        let there = Generations::default();
        let before = here.snapshot();
        here.apply_payload(&here.payload(Areas::ALL));
        assert!(here.unchanged_since(&before, Areas::ALL));
        here.apply_payload(&there.payload(Areas::MOVEMENT));
        assert!(here.unchanged_since(&before, Areas::GATHERINGS));
        assert!(!here.unchanged_since(&before, Areas::MOVEMENT));
        let before = here.snapshot();
        here.apply_payload("nonsense");
        assert!(!here.unchanged_since(&before, Areas::GATHERINGS));
        let before = here.snapshot();
        here.apply_payload("1:255");
        assert!(!here.unchanged_since(&before, Areas::ALL));
    }
}
