//! Image tower: ResNet with a linear projection to the joint space.
//!
//! Follows "Deep Residual Learning for Image Recognition" (He et al., 2015,
//! <https://arxiv.org/abs/1512.03385>) as torchvision implements it
//! (`torchvision/models/resnet.py`: the stride of a bottleneck sits on its 3x3 convolution,
//! "ResNet v1.5"). Parameter names equal torchvision's state-dict keys (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer2.0.downsample.0`, ...), so a torchvision checkpoint saved as
//! safetensors loads by name; the classifier `fc` is replaced by the projection `proj`
//! (feature dim -> embed dim), as in the paper (2048 -> 768).
//!
//! Input: the data pipeline's `u8` HWC patches, scaled to [0, 1] and normalised with the CLIP
//! mean and standard deviation, as NCHW floats (`preprocess`).

use crate::config::{Block, ImageTowerConfig};
use crate::error::KernelsError;
use crate::sync_bn::Attached;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

/// CLIP's per-channel pixel mean (RGB, on [0, 1]).
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// CLIP's per-channel pixel standard deviation (RGB, on [0, 1]).
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    };
    nn::batch_norm2d(p, c, cfg)
}

/// Which statistics the batch norms normalise with.
#[derive(Debug, Clone, Copy)]
pub enum NormMode<'s, 'g> {
    /// The running statistics (evaluation).
    Running,
    /// This batch's statistics; the running ones move (training, per rank).
    Batch,
    /// The statistics of every rank's batch together (training, synchronised).
    Synced(&'s Attached<'g>),
}

impl NormMode<'_, '_> {
    /// `Batch` when training, else `Running`.
    pub fn local(train: bool) -> Self {
        if train {
            NormMode::Batch
        } else {
            NormMode::Running
        }
    }

    fn apply(&self, xs: &Tensor, bn: &nn::BatchNorm) -> Result<Tensor, KernelsError> {
        match self {
            NormMode::Running => Ok(xs.apply_t(bn, false)),
            NormMode::Batch => Ok(xs.apply_t(bn, true)),
            NormMode::Synced(scope) => scope.batch_norm(xs, bn),
        }
    }
}

/// One residual block (basic or bottleneck) with its optional downsample shortcut.
#[derive(Debug)]
struct ResBlock {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl ResBlock {
    fn new(p: nn::Path, block: Block, c_in: i64, width: i64, stride: i64) -> Self {
        let c_out = width * block.expansion();
        let convs = match block {
            Block::Basic => vec![
                (
                    conv(&p / "conv1", c_in, width, 3, stride, 1),
                    bn(&p / "bn1", width),
                ),
                (
                    conv(&p / "conv2", width, width, 3, 1, 1),
                    bn(&p / "bn2", width),
                ),
            ],
            Block::Bottleneck => vec![
                (
                    conv(&p / "conv1", c_in, width, 1, 1, 0),
                    bn(&p / "bn1", width),
                ),
                (
                    conv(&p / "conv2", width, width, 3, stride, 1),
                    bn(&p / "bn2", width),
                ),
                (
                    conv(&p / "conv3", width, c_out, 1, 1, 0),
                    bn(&p / "bn3", c_out),
                ),
            ],
        };
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = &p / "downsample";
            (
                conv(&d / "0", c_in, c_out, 1, stride, 0),
                bn(&d / "1", c_out),
            )
        });
        Self { convs, downsample }
    }

    fn forward(&self, xs: &Tensor, norm: NormMode) -> Result<Tensor, KernelsError> {
        let last = self.convs.len() - 1;
        let mut ys = xs.shallow_clone();
        for (i, (c, b)) in self.convs.iter().enumerate() {
            ys = norm.apply(&ys.apply(c), b)?;
            if i != last {
                ys = ys.relu();
            }
        }
        let shortcut = match &self.downsample {
            Some((c, b)) => norm.apply(&xs.apply(c), b)?,
            None => xs.shallow_clone(),
        };
        Ok((ys + shortcut).relu())
    }
}

/// ResNet trunk, global average pool and projection `proj`.
#[derive(Debug)]
pub struct ImageTower {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    stages: Vec<Vec<ResBlock>>,
    proj: nn::Linear,
    feature_dim: i64,
}

impl ImageTower {
    /// Builds the tower under `p` (torchvision names below it) projecting to `embed_dim`.
    /// The config must have been validated.
    pub fn new(p: &nn::Path, cfg: &ImageTowerConfig, embed_dim: i64) -> Self {
        let conv1 = conv(p / "conv1", 3, cfg.width, 7, 2, 3);
        let bn1 = bn(p / "bn1", cfg.width);
        let mut c_in = cfg.width;
        let mut stages = Vec::with_capacity(4);
        for (s, &n) in cfg.layers.iter().enumerate() {
            let width = cfg.width << s;
            let stride = if s == 0 { 1 } else { 2 };
            let sp = p / format!("layer{}", s + 1);
            let blocks = (0..n)
                .map(|i| {
                    let b = ResBlock::new(
                        &sp / i,
                        cfg.block,
                        c_in,
                        width,
                        if i == 0 { stride } else { 1 },
                    );
                    c_in = width * cfg.block.expansion();
                    b
                })
                .collect();
            stages.push(blocks);
        }
        let feature_dim = cfg.feature_dim();
        let proj = nn::linear(p / "proj", feature_dim, embed_dim, Default::default());
        Self {
            conv1,
            bn1,
            stages,
            proj,
            feature_dim,
        }
    }

    /// Channels of the pooled features.
    pub fn feature_dim(&self) -> i64 {
        self.feature_dim
    }

    /// Pooled trunk features `[N, feature_dim]` of normalised NCHW input, with the batch
    /// norms in mode `norm`. Only synchronised norms can fail (the sum over ranks).
    pub fn features(&self, xs: &Tensor, norm: NormMode) -> Result<Tensor, KernelsError> {
        let mut ys = norm
            .apply(&xs.apply(&self.conv1), &self.bn1)?
            .relu()
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for stage in &self.stages {
            for block in stage {
                ys = block.forward(&ys, norm)?;
            }
        }
        Ok(ys.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
    }

    /// Projected embedding `[N, embed_dim]` (not normalised) of normalised NCHW input.
    pub fn forward(&self, xs: &Tensor, norm: NormMode) -> Result<Tensor, KernelsError> {
        Ok(self.proj.forward(&self.features(xs, norm)?))
    }

    /// [`Self::forward`] with per-rank norms: batch statistics when `train`, else running.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward(xs, NormMode::local(train))
            .expect("only synchronised batch norms fail")
    }
}

impl ModuleT for ImageTower {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        ImageTower::forward_t(self, xs, train)
    }
}

/// Wraps `n` square RGB patches of side `side` (HWC, row-major, as the data pipeline's
/// batches hold them) in a `u8` tensor `[n, side, side, 3]`.
pub fn patches_to_tensor(pixels: &[u8], n: usize, side: usize) -> Result<Tensor, KernelsError> {
    let expected = n * side * side * 3;
    if pixels.len() != expected {
        return Err(KernelsError::Input {
            what: "pixels",
            reason: format!(
                "{} bytes, expected {n} patches x {side} x {side} x 3 = {expected}",
                pixels.len()
            ),
        });
    }
    Ok(Tensor::from_slice(pixels).view([n as i64, side as i64, side as i64, 3]))
}

/// `u8` NHWC patches -> float NCHW on `device`: `/255`, then `(x - CLIP_MEAN) / CLIP_STD`.
pub fn preprocess(patches: &Tensor, device: Device) -> Result<Tensor, KernelsError> {
    let size = patches.size();
    if size.len() != 4 || size[3] != 3 || patches.kind() != Kind::Uint8 {
        return Err(KernelsError::Input {
            what: "patches",
            reason: format!(
                "expected u8 [N, H, W, 3], got {:?} {:?}",
                patches.kind(),
                size
            ),
        });
    }
    let mean = Tensor::from_slice(&CLIP_MEAN)
        .to_kind(Kind::Float)
        .view([1, 3, 1, 1])
        .to_device(device);
    let std = Tensor::from_slice(&CLIP_STD)
        .to_kind(Kind::Float)
        .view([1, 3, 1, 1])
        .to_device(device);
    let xs = patches
        .to_device(device)
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 255.0;
    Ok(((xs - mean) / std).contiguous())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_scales_normalises_and_moves_channels_first() {
        // One 1x2 patch: pixels (255, 0, 128) and (0, 255, 51).
        let px = patches_to_tensor(&[255, 0, 128, 0, 255, 51], 1, 1);
        assert!(px.is_err(), "1x1 patch needs 3 bytes");
        let t = Tensor::from_slice(&[255u8, 0, 128, 0, 255, 51]).view([1, 1, 2, 3]);
        let x = preprocess(&t, Device::Cpu).unwrap();
        assert_eq!(x.size(), [1, 3, 1, 2]);
        let want = [
            [
                (1.0 - CLIP_MEAN[0]) / CLIP_STD[0],
                (0.0 - CLIP_MEAN[0]) / CLIP_STD[0],
            ],
            [
                (0.0 - CLIP_MEAN[1]) / CLIP_STD[1],
                (1.0 - CLIP_MEAN[1]) / CLIP_STD[1],
            ],
            [
                (128.0 / 255.0 - CLIP_MEAN[2]) / CLIP_STD[2],
                (51.0 / 255.0 - CLIP_MEAN[2]) / CLIP_STD[2],
            ],
        ];
        for (c, row) in want.iter().enumerate() {
            for (w, &v) in row.iter().enumerate() {
                let got = x.double_value(&[0, c as i64, 0, w as i64]);
                assert!((got - v).abs() < 1e-5, "channel {c} col {w}: {got} vs {v}");
            }
        }
    }

    #[test]
    fn preprocess_refuses_channels_first_or_float_input() {
        let t = Tensor::zeros([1, 3, 4, 4], (Kind::Uint8, Device::Cpu));
        assert!(matches!(
            preprocess(&t, Device::Cpu),
            Err(KernelsError::Input {
                what: "patches",
                ..
            })
        ));
        let t = Tensor::zeros([1, 4, 4, 3], (Kind::Float, Device::Cpu));
        assert!(preprocess(&t, Device::Cpu).is_err());
    }

    #[test]
    fn torchvision_parameter_names_and_shapes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let tower = ImageTower::new(&vs.root(), &ImageTowerConfig::resnet50(), 768);
        let vars = vs.variables();
        let shape = |n: &str| vars.get(n).unwrap_or_else(|| panic!("no {n}")).size();
        assert_eq!(shape("conv1.weight"), [64, 3, 7, 7]);
        assert_eq!(shape("layer1.0.downsample.0.weight"), [256, 64, 1, 1]);
        assert_eq!(shape("layer2.0.conv2.weight"), [128, 128, 3, 3]);
        assert_eq!(shape("layer4.2.bn3.running_var"), [2048]);
        assert_eq!(shape("proj.weight"), [768, 2048]);
        assert!(!vars.contains_key("layer1.1.downsample.0.weight"));
        assert!(!vars.contains_key("fc.weight"));
        // torchvision ResNet-50: 23,508,032 parameters without fc; plus 2048*768+768.
        let params: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(params, 23_508_032 + 2048 * 768 + 768);
        assert_eq!(tower.feature_dim(), 2048);
    }
}
