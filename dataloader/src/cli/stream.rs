//! `dataloader stream`.

/// Arguments of `dataloader stream`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader stream` is not implemented yet")
}
