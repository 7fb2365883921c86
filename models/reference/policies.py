"""PyTorch reference definitions of the policy architectures fudo serves.

These mirror stable-baselines3 / sb3-contrib exactly where it matters for serving: the module
names (and therefore the ``state_dict`` keys), the layer order and the activations, so a policy
trained with SB3 loads into fudo unchanged (``policy.state_dict()`` -> safetensors).

* ``PpoMlpPolicy``: SB3 ``PPO("MlpPolicy")`` (``ActorCriticPolicy``) for a ``Discrete`` action
  space: ``mlp_extractor.policy_net`` / ``mlp_extractor.value_net`` (Linear + Tanh pairs, so the
  Linear layers are at indices 0, 2, ...), then ``action_net`` (logits) and ``value_net``.
* ``LstmPolicy``: sb3-contrib ``RecurrentPPO("MlpLstmPolicy")``
  (``RecurrentActorCriticPolicy`` with ``shared_lstm=False, enable_critic_lstm=True``):
  ``lstm_actor`` and ``lstm_critic`` (one-layer ``nn.LSTM``, not batch-first) feed the same
  ``mlp_extractor`` / ``action_net`` / ``value_net`` heads.

fudo packs a recurrent policy's state into one row per session:
``[h_actor, c_actor, h_critic, c_critic]`` (``state_dim = 4 * hidden``). Zeros start an episode.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(in_dim: int, sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), ACTIVATIONS[activation]()]
        in_dim = size
    return nn.Sequential(*layers)


class MlpExtractor(nn.Module):
    """SB3 ``MlpExtractor`` with separate policy and value networks."""

    def __init__(self, in_dim: int, pi: list[int], vf: list[int], activation: str):
        super().__init__()
        self.policy_net = _mlp(in_dim, pi, activation)
        self.value_net = _mlp(in_dim, vf, activation)
        self.latent_dim_pi = pi[-1] if pi else in_dim
        self.latent_dim_vf = vf[-1] if vf else in_dim

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy_net(features), self.value_net(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


class PpoMlpPolicy(nn.Module):
    """SB3 ``ActorCriticPolicy`` (``MlpPolicy``) for a discrete action space."""

    architecture = "mlp_actor_critic"

    def __init__(self, obs_dim=32, n_actions=3, pi=(64, 64), vf=(64, 64), activation="tanh"):
        super().__init__()
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.pi, self.vf, self.activation = list(pi), list(vf), activation
        self.mlp_extractor = MlpExtractor(obs_dim, self.pi, self.vf, activation)
        self.action_net = nn.Linear(self.mlp_extractor.latent_dim_pi, n_actions)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B, obs_dim]`` -> ``(logits [B, n_actions], values [B])``."""
        latent_pi, latent_vf = self.mlp_extractor(obs)
        return self.action_net(latent_pi), self.value_net(latent_vf).squeeze(-1)

    def config(self) -> dict:
        return {
            "architecture": self.architecture,
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "net_arch": {"pi": self.pi, "vf": self.vf},
            "activation": self.activation,
            "lstm_hidden_size": None,
        }


class LstmPolicy(nn.Module):
    """sb3-contrib ``RecurrentActorCriticPolicy`` (separate actor and critic LSTMs)."""

    architecture = "lstm_actor_critic"

    def __init__(
        self, obs_dim=32, n_actions=3, hidden=64, pi=(64, 64), vf=(64, 64), activation="tanh"
    ):
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden = obs_dim, n_actions, hidden
        self.pi, self.vf, self.activation = list(pi), list(vf), activation
        self.lstm_actor = nn.LSTM(obs_dim, hidden, num_layers=1)
        self.lstm_critic = nn.LSTM(obs_dim, hidden, num_layers=1)
        self.mlp_extractor = MlpExtractor(hidden, self.pi, self.vf, activation)
        self.action_net = nn.Linear(self.mlp_extractor.latent_dim_pi, n_actions)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)

    @property
    def state_dim(self) -> int:
        return 4 * self.hidden

    def zero_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.state_dim)

    def _unpack(self, state: torch.Tensor):
        h = self.hidden
        # nn.LSTM wants (num_layers, batch, hidden).
        return (
            (state[:, 0:h].unsqueeze(0).contiguous(), state[:, h : 2 * h].unsqueeze(0).contiguous()),
            (state[:, 2 * h : 3 * h].unsqueeze(0).contiguous(), state[:, 3 * h :].unsqueeze(0).contiguous()),
        )

    def forward_sequence(self, obs_seq: torch.Tensor, state: torch.Tensor):
        """``obs_seq [T, B, obs_dim]`` from ``state [B, 4H]`` (no episode resets inside).

        Returns ``(logits [T, B, A], values [T, B], final state [B, 4H])``."""
        actor_state, critic_state = self._unpack(state)
        latent_pi, (ha, ca) = self.lstm_actor(obs_seq, actor_state)
        latent_vf, (hc, cc) = self.lstm_critic(obs_seq, critic_state)
        logits = self.action_net(self.mlp_extractor.forward_actor(latent_pi))
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf)).squeeze(-1)
        new_state = torch.cat([ha[0], ca[0], hc[0], cc[0]], dim=1)
        return logits, values, new_state

    def step(self, obs: torch.Tensor, state: torch.Tensor):
        """One step: ``obs [B, obs_dim]``, ``state [B, 4H]`` ->
        ``(logits [B, A], values [B], next state [B, 4H])``."""
        logits, values, new_state = self.forward_sequence(obs.unsqueeze(0), state)
        return logits[0], values[0], new_state

    def config(self) -> dict:
        return {
            "architecture": self.architecture,
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "net_arch": {"pi": self.pi, "vf": self.vf},
            "activation": self.activation,
            "lstm_hidden_size": self.hidden,
        }
