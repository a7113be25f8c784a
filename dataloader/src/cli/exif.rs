//! `dataloader exif`.

/// Arguments of `dataloader exif`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dataloader exif` is not implemented yet")
}
