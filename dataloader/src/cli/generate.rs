//! `dataloader generate`.

/// Arguments of `dataloader generate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader generate` is not implemented yet")
}
