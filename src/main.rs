//! `groundswell`: parses the command line and hands over to the API crate.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    groundswell_api::cli::run().await
}
