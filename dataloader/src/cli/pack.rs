//! `dataloader pack`.

/// Arguments of `dataloader pack`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader pack` is not implemented yet")
}
