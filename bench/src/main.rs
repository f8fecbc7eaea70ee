//! `groundswell-bench`: load the movement at scale, and measure Groundswell against the floor of
//! raw SQL.

// The command line that calls `seed::load` is still to come.
#[allow(dead_code)]
mod seed;

fn main() {}
