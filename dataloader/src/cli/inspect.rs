//! `dataloader inspect`.

/// Arguments of `dataloader inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader inspect` is not implemented yet")
}
