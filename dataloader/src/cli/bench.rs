//! `dataloader bench`.

/// Arguments of `dataloader bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader bench` is not implemented yet")
}
