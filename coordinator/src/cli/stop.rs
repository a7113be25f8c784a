//! `coordinator stop`: ends the job; members drain (checkpoint first) with `--drain`.

use super::Connection;
use clap::Args;
use proto::domain::{JobPhase, StopRequest};
use proto::wire::StopJobRequest;

/// Arguments of `stop`.
#[derive(Args, Debug)]
pub struct StopArgs {
    #[command(flatten)]
    /// Where the coordinator is.
    pub connection: Connection,
    /// Let members checkpoint their current step before they exit.
    #[arg(long)]
    pub drain: bool,
    /// Why, for the coordinator's log.
    #[arg(long, default_value = "stopped by an operator")]
    pub reason: String,
}

/// Sends the stop and prints the job's phase.
pub fn run(args: StopArgs) -> anyhow::Result<()> {
    let phase = super::runtime()?.block_on(async {
        let mut client = args.connection.connect().await?;
        let request = StopJobRequest::from(StopRequest {
            drain: args.drain,
            reason: args.reason,
        });
        let reply = client.stop_job(request).await?.into_inner();
        anyhow::Ok(JobPhase::try_from(reply)?)
    })?;
    println!("job {phase}");
    Ok(())
}
