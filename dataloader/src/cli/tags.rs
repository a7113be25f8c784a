//! `dataloader tags`.

/// Arguments of `dataloader tags`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader tags` is not implemented yet")
}
