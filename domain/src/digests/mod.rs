//! Email digests: who is due, what each digest holds, and queuing it exactly once per
//! recipient and period.

pub mod schedule;
