"""The training plot: cost and final end-effector distance per iteration (controllers' samples;
for MDGPS / BADMM also the network alone, dashed, and its worst test condition)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def write_plot(iterations: list[dict], threshold: float, path: Path) -> None:
    its = [r['iteration'] for r in iterations]
    fig, (ax_cost, ax_dist) = plt.subplots(1, 2, figsize=(10, 4))
    ax_cost.plot(its, [r['mean_cost'] for r in iterations], 'o-')
    ax_cost.set(xlabel='iteration', ylabel='mean trajectory cost', title='cost')
    dists = [r['final_ee_distance'] for r in iterations]
    for m in range(len(dists[0])):
        line, = ax_dist.semilogy(its, [d[m] for d in dists], 'o-', label=f'condition {m}')
        if 'policy_final_ee_distance' in iterations[0]:       # the network alone, same condition
            ax_dist.semilogy(its, [r['policy_final_ee_distance'][m] for r in iterations], 'x--',
                             color=line.get_color(), label=f'network, condition {m}')
    if 'policy_test_final_ee_distance' in iterations[0]:
        ax_dist.semilogy(its, [max(r['policy_test_final_ee_distance']) for r in iterations], 'ks:',
                         label='network, worst test condition')
    ax_dist.axhline(threshold, color='k', linestyle='--', label=f'success ({threshold} m)')
    ax_dist.set(xlabel='iteration', ylabel='final end-effector distance [m]', title='distance to target')
    ax_dist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
