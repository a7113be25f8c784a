//! `dataloader`: command line of the data pipeline (exif, tags, generate, pack, inspect,
//! stream, bench).

fn main() -> anyhow::Result<()> {
    Ok(())
}
