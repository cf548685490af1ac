"""Scores: Fréchet distance (against scipy), alignment calibration, KL / IS / CLAP score math."""

import numpy as np
import pytest
import scipy.linalg

from tokenlm.eval.alignment import alignment_report, calibrate, chance_scores, summarize
from tokenlm.eval.analysis import Analysis
from tokenlm.eval.attributes import CheckResult
from tokenlm.eval.frechet import frechet_between, frechet_distance, gaussian_stats, quality_score
from tokenlm.eval.metrics import clap_score, frechet_audio_distance, inception_score, kl_divergences, softmax


def scipy_frechet(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root (the reference implementation)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_agrees_with_scipy_sqrtm(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 20)) @ rng.standard_normal((20, 20))
    y = rng.standard_normal((300, 20)) @ rng.standard_normal((20, 20)) + 0.5
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_frechet_distance_of_known_gaussians_and_rank_deficient_sets():
    # N(0, I) vs N(m, 4I) in 3-D: |m|^2 + 3 + 12 - 2 * 3 * 2 = |m|^2 + 3
    assert frechet_distance(np.zeros(3), np.eye(3), np.array([1.0, 2.0, 0.0]), 4 * np.eye(3)) == pytest.approx(8.0)
    rng = np.random.default_rng(0)
    small = rng.standard_normal((5, 40))  # covariance of rank 4: sqrtm struggles, eigh does not
    distance = frechet_between(small, small + 1.0)
    assert distance == pytest.approx(40.0, rel=1e-6)


def test_quality_score_uses_fixed_equal_set_sizes():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((80, 6)) * 10 + 3
    same = quality_score(rng.standard_normal((60, 6)) * 10 + 3, reference, set_size=50)
    shifted = quality_score(rng.standard_normal((60, 6)) * 10 + 23, reference, set_size=50)
    assert same["set_size"] == shifted["set_size"] == 50 and same["dims"] == 6
    assert same["frechet_distance"] < 1.0 < 20.0 < shifted["frechet_distance"]  # ~6 x (20 / 10)^2 = 24
    assert quality_score(reference, reference)["frechet_distance"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match=r"set_size must be in \[2, 60\]"):
        quality_score(rng.standard_normal((60, 6)), reference, set_size=70)
    with pytest.raises(ValueError, match="same D"):
        quality_score(rng.standard_normal((60, 6)), rng.standard_normal((60, 5)))


def _analysis(**detected) -> Analysis:
    return Analysis(duration_s=1.0, **detected)


def test_alignment_scores_chance_and_calibration():
    labels = [{"family": "bursts", "count": n} for n in (1, 2, 3, 4)]
    perfect = [_analysis(count=n) for n in (1, 2, 3, 4)]
    report = alignment_report(perfect, labels, ceiling={"count": {"score": 1.0}, "overall": {"score": 1.0}},
                              shuffles=200)
    count = report["attributes"]["count"]
    assert count["score"] == 1.0 and count["matched"] == 4 and count["n"] == 4
    assert count["chance"] == pytest.approx(0.25, abs=0.05)  # a random permutation fixes 1 of 4 on average
    assert count["calibrated"] == pytest.approx(1.0)
    half = alignment_report([_analysis(count=n) for n in (1, 2, 9, 9)], labels, shuffles=50)["attributes"]["count"]
    assert half["score"] == 0.5 and half["calibrated"] is None  # no ceiling given
    assert calibrate(0.5, 0.25, 0.75) == pytest.approx(0.5)
    assert calibrate(0.5, 0.25, 0.27) is None and calibrate(0.5, None, 1.0) is None


def test_summarize_counts_every_check_once():
    results = [[CheckResult("pitch", 440, 441, True), CheckResult("loudness", "loud", "quiet", False)],
               [CheckResult("pitch", 220, None, False)]]
    summary = summarize(results)
    assert summary["pitch"] == {"score": 0.5, "matched": 1, "n": 2}
    assert summary["overall"] == {"score": pytest.approx(1 / 3), "matched": 1, "n": 3}
    assert chance_scores([_analysis()], [{"family": "bursts", "count": 1}]) == {}


def test_kl_divergences_both_directions():
    gen = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    ref = np.log(np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]))
    p, q = softmax(ref), softmax(gen)
    expected_ref_gen = np.mean([(p[i] * np.log(p[i] / q[i])).sum() for i in range(2)])
    expected_gen_ref = np.mean([(q[i] * np.log(q[i] / p[i])).sum() for i in range(2)])
    result = kl_divergences(gen, ref, epsilon=0.0)
    assert result["kl_ref_gen"] == pytest.approx(expected_ref_gen) and result["kl_gen_ref"] == pytest.approx(
        expected_gen_ref)
    assert result["kl_ref_gen"] != pytest.approx(result["kl_gen_ref"])
    assert kl_divergences(gen, gen)["kl_ref_gen"] == pytest.approx(0.0, abs=1e-9)


def test_inception_score_bounds():
    confident = np.eye(5) * 50.0  # five sharp, different classes: IS = number of classes
    assert inception_score(confident) == pytest.approx(5.0, rel=1e-6)
    assert inception_score(np.zeros((5, 5))) == pytest.approx(1.0)  # uniform predictions: IS = 1
    assert inception_score(np.tile([50.0, 0, 0], (4, 1))) == pytest.approx(1.0, rel=1e-6)  # one class for all


def test_clap_score_is_mean_cosine():
    text = np.array([[1.0, 0.0], [0.0, 2.0]])
    audio = np.array([[1.0, 1.0], [0.0, -3.0]])
    assert clap_score(text, audio) == pytest.approx((np.sqrt(0.5) - 1.0) / 2)
    with pytest.raises(ValueError, match="must pair up"):
        clap_score(text, audio[:1])


def test_fad_pools_frames_or_clip_means():
    rng = np.random.default_rng(0)
    gen = [rng.standard_normal((10, 4)) for _ in range(6)]
    ref = [rng.standard_normal((10, 4)) + 1.0 for _ in range(6)]
    assert frechet_audio_distance(gen, ref) == pytest.approx(frechet_between(np.concatenate(gen), np.concatenate(ref)))
    means = frechet_between(np.stack([g.mean(0) for g in gen]), np.stack([r.mean(0) for r in ref]))
    assert frechet_audio_distance(gen, ref, pooling="mean") == pytest.approx(means)
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        frechet_audio_distance(gen, ref, pooling="max")
