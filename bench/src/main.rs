//! `groundswell-bench`: load the movement at scale, and measure Groundswell against the floor of
//! raw SQL.

mod seed;

fn main() {}
