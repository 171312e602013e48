"""The network: a pretrained backbone, a pooling of its token states, and a head.

Also turns a fitted network into plain values and bytes and back, so that pickle and
skops persist it without trusting torch or transformers classes. transformers is
imported inside the functions. This module imports nothing from skbert.
"""

from torch import nn

POOLINGS = ("mean", "cls")


class TextClassifierModule(nn.Module):
    """Backbone, pooling and classification head.

    Parameters
    ----------
    backbone : transformers.PreTrainedModel
        An encoder whose output has ``last_hidden_state``.
    n_classes : int
        Number of output logits.
    pooling : {"mean", "cls"}
        "mean" averages the states of real tokens (what sentence-transformers models
        are trained with); "cls" takes the first token's state.
    dropout : float
        Dropout before the linear layer.
    """

    def __init__(self, backbone, n_classes, pooling="mean", dropout=0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
        self.backbone = backbone
        self.pooling = pooling
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(backbone.config.hidden_size, n_classes)
        )

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """Return logits of shape (batch, n_classes)."""
        states = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_module(backbone, n_classes, pooling):
    """Put a freshly initialised head on ``backbone``."""
    config = backbone.config
    dropout = getattr(config, "classifier_dropout", None)
    if dropout is None:
        dropout = getattr(config, "hidden_dropout_prob", 0.1)
    return TextClassifierModule(backbone, n_classes, pooling=pooling, dropout=dropout)


def module_to_state(module):
    """Return a dict of plain values from which ``module_from_state`` rebuilds it."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return {
        "config": module.backbone.config.to_dict(),
        "n_classes": module.head[-1].out_features,
        "pooling": module.pooling,
        "dropout": float(module.head[0].p),
        "weights": save(tensors),
    }


def module_from_state(state):
    """Rebuild a module saved by ``module_to_state`` on the CPU."""
    from safetensors.torch import load
    from transformers import AutoConfig, AutoModel

    config_dict = dict(state["config"])
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    backbone = AutoModel.from_config(config)
    module = TextClassifierModule(
        backbone, state["n_classes"], pooling=state["pooling"], dropout=state["dropout"]
    )
    module.load_state_dict(load(state["weights"]), strict=True)
    return module.eval()
