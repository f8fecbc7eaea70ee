//! `groundswell`: parses the command line and hands over to the API crate.

/// mimalloc rather than the system allocator: under load a fifth of the server's time went to
/// glibc's malloc and free, and its many arenas held on to memory after a rush.
///
/// mimalloc's version 2 (the `v2` feature), not 3, the crate's default: the live heap at the
/// benchmark's peak is about 26 MB (heaptrack), and version 3 kept much more resident around
/// it. In the same runs, the server peaked at 71 to 81 MiB with version 2 and 84 to 96 MiB with
/// version 3, for about 2% more instructions a request (callgrind, the five changes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    groundswell_api::cli::run().await
}
