//! Field-by-field validation of a [`TrainConfig`]: every rule lives here, and each
//! failure names the field path (`train.batch_size`) and why.

use infra::FieldError;

use super::TrainConfig;

/// The device training runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// CUDA device with this index.
    Cuda(u32),
}

impl Device {
    /// Parses `cpu`, `cuda` (device 0) or `cuda:N`.
    pub fn parse(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("must be cpu, cuda or cuda:N (got {s:?})")),
        }
    }

    /// Whether this is a CUDA device.
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

/// Every rule broken by `c`, in file order.
pub(super) fn check(c: &TrainConfig) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |field: &str, reason: String| errs.push(FieldError::new(field, reason));

    // [data]
    let d = &c.data;
    if d.url.trim().is_empty() {
        err("data.url", "must not be empty".into());
    }
    if d.patch_px < 32 {
        err(
            "data.patch_px",
            format!(
                "must be at least 32, the ResNet's downsampling (got {})",
                d.patch_px
            ),
        );
    }
    if d.prefetch_batches == 0 {
        err("data.prefetch_batches", "must be at least 1 (got 0)".into());
    }
    if !(0.0..1.0).contains(&d.tag_dropout) {
        err(
            "data.tag_dropout",
            format!("must be in [0, 1) (got {})", d.tag_dropout),
        );
    }
    if d.decode_threads == Some(0) {
        err(
            "data.decode_threads",
            "must be at least 1, or absent for one per core (got 0)".into(),
        );
    }

    // [model]: the model code's own rules, reported under `model.`.
    let m = &c.model;
    if let Err(e) = m.validate() {
        err(&format!("model.{}", e.field), e.reason);
    }
    if !(2..=m.text.max_position_embeddings).contains(&i64::from(d.max_text_tokens)) {
        err(
            "data.max_text_tokens",
            format!(
                "must be in 2..=model.text.max_position_embeddings = {} (got {})",
                m.text.max_position_embeddings, d.max_text_tokens
            ),
        );
    }

    // [model_init]
    let init = &c.model_init;
    if init.freeze_text && init.text_weights_path.is_none() {
        err(
            "model_init.text_weights_path",
            "is required when model_init.freeze_text is true (a frozen tower must be pretrained)"
                .into(),
        );
    }
    if init.freeze_text && !m.objective.uses_text() {
        err(
            "model_init.freeze_text",
            "has no effect with model.objective = crop_clr (no text tower); set it false".into(),
        );
    }

    // [optim]
    let o = &c.optim;
    if !(o.lr.is_finite() && o.lr > 0.0) {
        err("optim.lr", format!("must be positive (got {})", o.lr));
    }
    if !(o.min_lr.is_finite() && o.min_lr >= 0.0 && o.min_lr <= o.lr) {
        err(
            "optim.min_lr",
            format!("must be in [0, optim.lr = {}] (got {})", o.lr, o.min_lr),
        );
    }
    for (i, b) in o.betas.iter().enumerate() {
        if !(0.0..1.0).contains(b) {
            err(
                &format!("optim.betas[{i}]"),
                format!("must be in [0, 1) (got {b})"),
            );
        }
    }
    if !(o.eps.is_finite() && o.eps > 0.0) {
        err("optim.eps", format!("must be positive (got {})", o.eps));
    }
    if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
        err(
            "optim.weight_decay",
            format!("must be zero or positive (got {})", o.weight_decay),
        );
    }
    match (o.warmup_steps, o.warmup_epochs) {
        (Some(_), Some(_)) => err(
            "optim.warmup_steps",
            "give either optim.warmup_steps or optim.warmup_epochs, not both".into(),
        ),
        (None, None) => err(
            "optim.warmup_steps",
            "give optim.warmup_steps or optim.warmup_epochs (0 for no warm-up)".into(),
        ),
        (None, Some(e)) if !(e.is_finite() && e >= 0.0) => err(
            "optim.warmup_epochs",
            format!("must be zero or positive (got {e})"),
        ),
        _ => {}
    }
    if let Some(g) = o.grad_clip_norm {
        if !(g.is_finite() && g > 0.0) {
            err(
                "optim.grad_clip_norm",
                format!("must be positive, or absent for no clipping (got {g})"),
            );
        }
    }

    // [train]
    let tr = &c.train;
    if tr.batch_size < 2 {
        err(
            "train.batch_size",
            format!(
                "must be at least 2, a contrastive batch needs negatives (got {})",
                tr.batch_size
            ),
        );
    }
    if let Some(mb) = tr.micro_batch_size {
        if mb == 0 {
            err(
                "train.micro_batch_size",
                "must be at least 1 (got 0)".into(),
            );
        } else if !tr.batch_size.is_multiple_of(mb) {
            err(
                "train.batch_size",
                format!(
                    "must be a multiple of train.micro_batch_size (got {} and {mb})",
                    tr.batch_size
                ),
            );
        }
    }
    match (tr.epochs, tr.max_steps) {
        (Some(_), Some(_)) => err(
            "train.epochs",
            "give either train.epochs or train.max_steps, not both".into(),
        ),
        (None, None) => err(
            "train.epochs",
            "give train.epochs or train.max_steps".into(),
        ),
        (Some(0), None) => err("train.epochs", "must be at least 1 (got 0)".into()),
        (None, Some(0)) => err("train.max_steps", "must be at least 1 (got 0)".into()),
        _ => {}
    }
    if let (Some(w), Some(n)) = (o.warmup_steps, tr.max_steps) {
        if n > 0 && w >= n {
            err(
                "optim.warmup_steps",
                format!("must be less than train.max_steps (got {w} and {n})"),
            );
        }
    }
    if let (Some(w), Some(n)) = (o.warmup_epochs, tr.epochs) {
        if n > 0 && w >= f64::from(n) {
            err(
                "optim.warmup_epochs",
                format!("must be less than train.epochs (got {w} and {n})"),
            );
        }
    }
    // bf16 autocast works on the CPU too (libtorch's CPU autocast), mainly for testing.
    if let Err(reason) = Device::parse(&tr.device) {
        err("train.device", reason);
    }

    // [checkpoint], [logging]
    if c.checkpoint.url.trim().is_empty() {
        err("checkpoint.url", "must not be empty".into());
    }
    if c.checkpoint.every_steps == 0 {
        err(
            "checkpoint.every_steps",
            "must be at least 1 (got 0)".into(),
        );
    }
    if c.checkpoint.keep_last == 0 {
        err(
            "checkpoint.keep_last",
            "must be at least 1, the checkpoint to resume from (got 0)".into(),
        );
    }
    if let Some(peak) = c
        .logging
        .peak_tflops
        .filter(|p| !(p.is_finite() && *p > 0.0))
    {
        err(
            "logging.peak_tflops",
            format!("must be a positive number of TFLOP/s, got {peak}"),
        );
    }
    if c.logging.every_steps == 0 {
        err("logging.every_steps", "must be at least 1 (got 0)".into());
    }
    errs.extend(c.eval.validate());
    errs
}
