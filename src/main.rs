//! `groundswell`: parses the command line and hands over to the API crate.

/// mimalloc rather than the system allocator: under load a fifth of the server's time went to
/// glibc's malloc and free, and its many arenas held on to memory after a rush.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    groundswell_api::cli::run().await
}
