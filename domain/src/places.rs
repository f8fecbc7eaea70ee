//! The place-taking rule, with no database: a registration of some places (the person and their
//! companions) fits while the places taken plus its own stay within the capacity; no capacity
//! means no limit. The registrations service and the benchmark's scale seed both use it, so the
//! seeded data follows the same rule as the running server.

/// Whether `places` more fit when `taken` of `capacity` are already taken.
pub fn fit(capacity: Option<i32>, taken: i32, places: i32) -> bool {
    capacity.is_none_or(|capacity| taken.saturating_add(places) <= capacity)
}

/// Whether no place is left.
pub fn full(capacity: Option<i32>, taken: i32) -> bool {
    capacity.is_some_and(|capacity| capacity.saturating_sub(taken) <= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_fits_only_whole_and_no_capacity_means_no_limit() {
        assert!(fit(Some(10), 7, 3));
        assert!(!fit(Some(10), 8, 3), "a group is never split");
        assert!(fit(None, i32::MAX, 5));
        assert!(!fit(Some(10), i32::MAX, 1), "no overflow past the capacity");
        assert!(full(Some(10), 10));
        assert!(!full(Some(10), 9));
        assert!(!full(None, 1_000_000));
    }
}
