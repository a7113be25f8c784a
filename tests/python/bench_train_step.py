#!/usr/bin/env python3
"""PyTorch reference for the training-step benchmark: the step time of the configured model
in plain PyTorch, on the same CPU and batch shape as the Rust/libtorch trainer.

From a training config (the TOML file `worker::config::Config::load` reads) it builds the
model the Rust code builds: a torchvision ResNet of any `image.width` with `fc` replaced by
a linear `proj` (its names and shapes are checked against the layout `kernels::resnet`
derives from the config), a Hugging Face `BertModel` (no pooler) or `DistilBertModel` with
the configured dropout (default 0), the pooling of `kernels::text`, a fixed or learnable
logit scale and the symmetric InfoNCE loss. A timed step: u8 NHWC patches -> normalised
NCHW floats, zero grads, forward in train mode, loss, backward, clipping if
`optim.grad_clip_norm` is set, `torch.optim.AdamW` at `optim.lr` (no decay on tensors of
under 2 dimensions). CropCLR: two crops per sample, one image-tower pass, loss between the
views. Inputs are random and fixed; token rows `[CLS] ids... [SEP]`, lengths in [3L/4, L].
On CUDA (`--device cuda`) the step runs under bf16 autocast with `--bf16` (as
`train.precision = "bf16"` does in Rust), `--pad-to N` pads every token row to N (the
reference code pads to 512; Rust pads to the batch's longest), and `--flops` counts the
step's floating-point operations once with torch's FlopCounterMode (for model FLOPs
utilisation). Not reproduced: the learning-rate schedule, micro-batches, pretrained text
weights.

The Rust benchmark spawns this script and parses the one JSON line it prints on stdout
(all else goes to stderr): {"impl": "pytorch", "torch", "threads", "batch", "seq_len",
"params" (trained), "step_ms": [...], "median_ms", "mean_ms", "loss_first", "loss_last",
"attn" (the Hugging Face attention implementation), "device", "gpu", "bf16", "pad_to",
"flops_per_step" (with --flops)}.

Usage: bench_train_step.py --config FILE --batch B --seq-len L --steps N --warmup W
       --threads T [--seed S] [--attn sdpa|eager] [--device cpu|cuda] [--bf16]
       [--pad-to N] [--flops]
"""

import argparse
import json
import math
import statistics
import sys
import time
import tomllib

REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr  # library chatter must not reach the JSON line

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


class WidthResNet(ResNet):
    """torchvision's ResNet with `width` stem/first-stage channels (torchvision fixes 64)."""

    def __init__(self, block, layers, width):
        torch.nn.Module.__init__(self)
        self._norm_layer = torch.nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        self.conv1 = torch.nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for s, n in enumerate(layers):
            setattr(self, f"layer{s + 1}", self._make_layer(block, width << s, n, stride=1 if s == 0 else 2))
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Identity()
        for m in self.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def rust_image_layout(img, embed_dim):
    """Name -> shape of the image tower's variables as `kernels::resnet::ImageTower` lays
    them out (computed from the config alone, independently of torchvision)."""
    width, layers, bottleneck = img.get("width", 64), img["layers"], img["block"] == "bottleneck"
    expansion = 4 if bottleneck else 1
    out = {}

    def conv_bn(conv, bn, c_out, c_in, k):
        out[f"{conv}.weight"] = (c_out, c_in, k, k)
        out.update({f"{bn}.{v}": (c_out,) for v in ("weight", "bias", "running_mean", "running_var")})

    conv_bn("conv1", "bn1", width, 3, 7)
    c_in = width
    for s, n in enumerate(layers):
        planes = width << s
        for i in range(n):
            p, stride = f"layer{s + 1}.{i}", (2 if s > 0 and i == 0 else 1)
            c_out = planes * expansion
            if bottleneck:
                convs = [(planes, c_in, 1), (planes, planes, 3), (c_out, planes, 1)]
            else:
                convs = [(planes, c_in, 3), (planes, planes, 3)]
            for j, (co, ci, k) in enumerate(convs, 1):
                conv_bn(f"{p}.conv{j}", f"{p}.bn{j}", co, ci, k)
            if stride != 1 or c_in != c_out:
                conv_bn(f"{p}.downsample.0", f"{p}.downsample.1", c_out, c_in, 1)
            c_in = c_out
    out.update({"proj.weight": (embed_dim, c_in), "proj.bias": (embed_dim,)})
    return out


class Model(torch.nn.Module):
    """Image tower (`image.*`), text tower (`text.*`) and temperature, as `kernels::joint`."""

    def __init__(self, mcfg, attn):
        super().__init__()
        img, embed, width = mcfg["image"], mcfg["embed_dim"], mcfg["image"].get("width", 64)
        block = Bottleneck if img["block"] == "bottleneck" else BasicBlock
        self.image = WidthResNet(block, img["layers"], width)
        self.image.proj = torch.nn.Linear(block.expansion * width * 8, embed)
        self.objective = mcfg.get("objective", "image_text")
        t = mcfg["text"]
        self.pooling = t["pooling"]
        if self.objective == "image_text":
            self.text = text_encoder(t, attn)
            if self.pooling != "masked_mean":
                self.text.pool_norm = torch.nn.LayerNorm(t["hidden_size"])
                self.text.proj = torch.nn.Linear(t["hidden_size"], embed)
        temp = mcfg.get("temperature", {"mode": "fixed", "logit_scale": 100.0})
        if temp["mode"] == "learnable":
            self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(temp.get("init", 1 / 0.07))))
            self.scale_max = temp.get("max", 100.0)
        else:
            self.register_buffer("fixed_scale", torch.tensor(float(temp.get("logit_scale", 100.0))))

    def scale(self):
        if hasattr(self, "logit_scale"):
            return self.logit_scale.exp().clamp(max=self.scale_max)
        return self.fixed_scale

    def embed_images(self, x):
        return F.normalize(self.image.proj(self.image(x)), dim=-1)

    def embed_texts(self, ids, mask):
        hidden = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "masked_mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
        if self.pooling == "cls":
            tok = hidden[:, 0]
        else:  # end_token: the last real token
            last = (mask.sum(1) - 1).clamp(min=0)
            tok = hidden[torch.arange(hidden.shape[0]), last]
        return F.normalize(self.text.proj(self.text.pool_norm(tok)), dim=-1)


def text_encoder(t, attn):
    drop = t.get("dropout", 0.0)
    common = dict(vocab_size=t.get("vocab_size", 30522), max_position_embeddings=t.get("max_position_embeddings", 512))
    if t["kind"] == "bert":
        cfg = transformers.BertConfig(
            hidden_size=t["hidden_size"], num_hidden_layers=t["num_layers"], num_attention_heads=t["num_heads"],
            intermediate_size=t["intermediate_size"], type_vocab_size=t.get("type_vocab_size", 2),
            layer_norm_eps=t.get("layer_norm_eps", 1e-12), hidden_act="gelu",
            hidden_dropout_prob=drop, attention_probs_dropout_prob=drop, **common)
        model = transformers.BertModel(cfg, add_pooling_layer=False)
    elif t["kind"] == "distil_bert":
        cfg = transformers.DistilBertConfig(
            dim=t["hidden_size"], n_layers=t["num_layers"], n_heads=t["num_heads"], hidden_dim=t["intermediate_size"],
            activation="gelu", dropout=drop, attention_dropout=drop, **common)
        model = transformers.DistilBertModel(cfg)
    else:
        sys.exit(f"model.text.kind {t['kind']!r}: expected bert or distil_bert")
    for m in model.modules():  # DistilBERT hard-codes 1e-12; the config may say otherwise
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = t.get("layer_norm_eps", 1e-12)
    model.set_attn_implementation(attn)
    return model


def preprocess(pixels):
    """u8 NHWC -> CLIP-normalised contiguous float NCHW (as `kernels::resnet::preprocess`)."""
    x = pixels.permute(0, 3, 1, 2).float() / 255.0
    return ((x - CLIP_MEAN) / CLIP_STD).contiguous()


def token_rows(batch, seq_len, vocab, gen):
    lo = 1000 if vocab > 1100 else 3
    ids = torch.zeros(batch, seq_len, dtype=torch.long)
    mask = torch.zeros(batch, seq_len, dtype=torch.long)
    lengths = torch.randint(max(2, (3 * seq_len) // 4), seq_len + 1, (batch,), generator=gen)
    for i, n in enumerate(lengths.tolist()):
        ids[i, 0], ids[i, n - 1] = 101 % vocab, 102 % vocab
        ids[i, 1 : n - 1] = torch.randint(lo, vocab, (n - 2,), generator=gen)
        mask[i, :n] = 1
    return ids, mask


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("batch", "seq-len", "steps", "warmup", "threads"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--pad-to", type=int, default=0)
    ap.add_argument("--flops", action="store_true")
    args = ap.parse_args()
    if min(args.batch, args.seq_len - 1, args.steps, args.threads) < 1 or args.warmup < 0:
        sys.exit("--batch, --steps, --threads must be >= 1, --seq-len >= 2, --warmup >= 0")
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    mcfg, ocfg, init = cfg["model"], cfg["optim"], cfg.get("model_init", {})
    patch = cfg.get("data", {}).get("patch_px", 124)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model = Model(mcfg, args.attn)
    img_sd = {k: tuple(v.shape) for k, v in model.image.state_dict().items() if not k.endswith("num_batches_tracked")}
    want = rust_image_layout(mcfg["image"], mcfg["embed_dim"])
    if img_sd != want:
        diff = sorted(set(img_sd.items()) ^ set(want.items()))[:8]
        sys.exit(f"image tower layout differs from kernels::resnet's: {diff}")
    assert model.image.conv1.out_channels == mcfg["image"].get("width", 64)
    if init.get("freeze_text") and hasattr(model, "text"):
        for name, p in model.text.named_parameters():
            if not name.startswith(("pool_norm.", "proj.")):
                p.requires_grad_(False)

    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_params = sum(p.numel() for _, p in trained)
    exempt = ocfg.get("no_decay_norm_bias_temperature", True)
    decay = [p for _, p in trained if p.dim() >= 2 or not exempt]
    no_decay = [p for _, p in trained if p.dim() < 2 and exempt]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ocfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=ocfg["lr"], betas=tuple(ocfg["betas"]), eps=ocfg["eps"])
    clip = ocfg.get("grad_clip_norm")
    print(f"model: {n_params:,} trained parameters ({len(decay)} decayed tensors, {len(no_decay)} not), "
          f"image tower {sum(p.numel() for p in model.image.parameters()):,}", file=sys.stderr)

    gen = torch.Generator().manual_seed(args.seed)
    crop_clr = model.objective == "crop_clr"
    pixels = torch.randint(0, 256, (args.batch * (1 + crop_clr), patch, patch, 3), dtype=torch.uint8, generator=gen)
    if not crop_clr:
        vocab = mcfg["text"].get("vocab_size", 30522)
        if args.seq_len > mcfg["text"].get("max_position_embeddings", 512):
            sys.exit(f"--seq-len {args.seq_len} exceeds model.text.max_position_embeddings")
        ids, mask = token_rows(args.batch, args.seq_len, vocab, gen)
        if args.pad_to > args.seq_len:
            pad = torch.zeros(args.batch, args.pad_to - args.seq_len, dtype=torch.long)
            ids, mask = torch.cat([ids, pad], 1), torch.cat([mask, pad], 1)
    dev = torch.device(args.device)
    model.to(dev)  # the same Parameter objects: the optimiser keeps them
    pixels = pixels.to(dev)
    if not crop_clr:
        ids, mask = ids.to(dev), mask.to(dev)
    labels = torch.arange(args.batch, device=dev)
    model.train()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step():
        x = preprocess(pixels)
        opt.zero_grad()
        with autocast():
            if crop_clr:
                views = x.view(args.batch, 2, 3, patch, patch)
                both = model.embed_images(torch.cat([views[:, 0], views[:, 1]]))
                a, b = both[: args.batch], both[args.batch :]
            else:
                a, b = model.embed_images(x), model.embed_texts(ids, mask)
        a, b = a.float(), b.float()  # logits and loss in float32
        logits = model.scale() * a @ b.t()
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([p for _, p in trained], clip)
        opt.step()
        return loss.item()

    for i in range(args.warmup):
        print(f"warm-up {i + 1}/{args.warmup}: loss {step():.4f}", file=sys.stderr)
    flops = None
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    times, losses = [], []
    for i in range(args.steps):
        sync()
        t0 = time.perf_counter()
        losses.append(step())
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
        print(f"step {i + 1}/{args.steps}: {times[-1]:.1f} ms, loss {losses[-1]:.4f}", file=sys.stderr)
    result = {
        "impl": "pytorch", "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
        "seq_len": args.seq_len, "params": n_params, "step_ms": times, "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times), "loss_first": losses[0], "loss_last": losses[-1], "attn": args.attn,
        "device": args.device, "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "bf16": args.bf16, "pad_to": max(args.pad_to, args.seq_len), "flops_per_step": flops,
    }
    print(json.dumps(result), file=REAL_STDOUT, flush=True)


if __name__ == "__main__":
    main()
