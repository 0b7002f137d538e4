"""FastMTP's head recomputed with plain torch ops from its weights (no transformers layer), for
tests: RMSNorm, W, one Qwen2 decoder layer (rotary attention with grouped KV, SwiGLU MLP), the
output norm and the target's LM head."""
import torch


def rms(x, w, eps):
    return w * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope(x, positions, theta):
    """x [heads, n, hd] rotated by positions [n] (rotate-half convention)."""
    hd = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    freqs = positions.float()[:, None] * inv[None]
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos(), emb.sin()
    half = torch.cat([-x[..., hd // 2:], x[..., : hd // 2]], -1)
    return x * cos + half * sin


class RefHead:
    def __init__(self, head, target_model):
        cfg = head.config
        self.eps = cfg.rms_norm_eps
        self.theta = cfg.rope_parameters["rope_theta"] if getattr(cfg, "rope_parameters", None) else cfg.rope_theta
        self.nh, self.nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.hd = cfg.hidden_size // self.nh
        self.sd = {k: v.detach().float() for k, v in head.state_dict().items()}
        self.embed = target_model.get_input_embeddings().weight.detach().float()
        self.lm_head = target_model.get_output_embeddings().weight.detach().float()
        self.keys, self.values = [], []  # per entry: [nkv, hd]

    def entry(self, state, token, position):
        """Add one cache entry (state [d], token, position); returns s [d] for that entry."""
        sd, b = self.sd, "block."
        x = sd["proj.weight"] @ torch.cat([rms(state, sd["norm_h.weight"], self.eps),
                                           rms(self.embed[token], sd["norm_e.weight"], self.eps)])
        h = rms(x, sd[b + "input_layernorm.weight"], self.eps)
        pos = torch.tensor([position])
        q = (sd[b + "self_attn.q_proj.weight"] @ h + sd[b + "self_attn.q_proj.bias"]).view(self.nh, 1, self.hd)
        k = (sd[b + "self_attn.k_proj.weight"] @ h + sd[b + "self_attn.k_proj.bias"]).view(self.nkv, 1, self.hd)
        v = (sd[b + "self_attn.v_proj.weight"] @ h + sd[b + "self_attn.v_proj.bias"]).view(self.nkv, 1, self.hd)
        self.keys.append(rope(k, pos, self.theta)[:, 0])
        self.values.append(v[:, 0])
        q = rope(q, pos, self.theta)[:, 0]  # [nh, hd]
        K = torch.stack(self.keys, 1).repeat_interleave(self.nh // self.nkv, 0)  # [nh, n, hd]
        V = torch.stack(self.values, 1).repeat_interleave(self.nh // self.nkv, 0)
        att = torch.softmax((K @ q[:, :, None])[..., 0] / self.hd ** 0.5, -1)  # [nh, n]
        o = (att[:, :, None] * V).sum(1).reshape(-1)
        x = x + sd[b + "self_attn.o_proj.weight"] @ o
        h = rms(x, sd[b + "post_attention_layernorm.weight"], self.eps)
        gate = torch.nn.functional.silu(sd[b + "mlp.gate_proj.weight"] @ h)
        x = x + sd[b + "mlp.down_proj.weight"] @ (gate * (sd[b + "mlp.up_proj.weight"] @ h))
        return rms(x, sd["norm_out.weight"], self.eps)

    def logits(self, s):
        return self.lm_head @ s

    def drop(self, keep):
        self.keys, self.values = self.keys[:keep], self.values[:keep]


def reference_chain(head, target_model, hidden, ids, t, step_tokens=None, depth=3):
    """Logits of draft steps 1..depth at origin t: committed entries 0..t from the target's
    hidden states, then the chain. step_tokens: the tokens fed at steps 2..depth (None: the
    chain's own greedy drafts). Returns (list of logits, the tokens drafted greedily)."""
    ref = RefHead(head, target_model)
    for i in range(t + 1):
        s = ref.entry(hidden[i].float(), ids[i + 1], i)
    out, drafted = [], []
    for j in range(depth):
        logits = ref.logits(s)
        out.append(logits)
        drafted.append(int(logits.argmax()))
        if j + 1 < depth:
            token = drafted[-1] if step_tokens is None else step_tokens[j]
            s = ref.entry(s, token, t + j + 1)
    return out, drafted
