"""Retrieval metrics of a CLAP (content-matched and strict R@k, AP, per-attribute mAP), the shuffled CLAP score, and
`tokenlm retrieval` on a tiny CLAP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tokenlm.cli import main
from tokenlm.eval.metrics import clap_score, clap_score_shuffled
from tokenlm.eval.retrieval import (
    average_precision,
    chance_recall,
    label_matches,
    recall_at,
    relevance,
    retrieval_report,
)

CAPTIONS = ["three short beeps", "3 quick beeps in a row", "loud white noise", "a held saw tone at 698 Hz",
            "wood blocks at 144 BPM"]
LABELS = [{"family": "bursts", "event": "beep", "count": 3}, {"family": "bursts", "event": "beep", "count": 3},
          {"family": "noise", "noise_colour": "white", "loudness": "loud"},
          {"family": "tone", "waveform": "sawtooth", "pitch_hz": 698.46, "note": "F5", "envelope": "sustained"},
          {"family": "clicks", "sound": "woodblock", "tempo_bpm": 144}]


def test_labels_match_within_the_evaluation_tolerances() -> None:
    assert label_matches("pitch_hz", 440.0, 452.0)  # 47 cents
    assert not label_matches("pitch_hz", 440.0, 454.0)  # 55 cents
    assert label_matches("tempo_bpm", 100, 104) and not label_matches("tempo_bpm", 100, 105)
    assert label_matches("order", ["chirp", "noise"], ["chirp", "noise"])
    assert not label_matches("order", ["chirp", "noise"], ["noise", "chirp"])
    assert not label_matches("waveform", "sine", None) and label_matches("waveform", "sine", "sine")


def test_relevance_is_what_the_caption_states() -> None:
    relevant = relevance(CAPTIONS, LABELS)
    expected = np.eye(5, dtype=bool)
    expected[0, 1] = expected[1, 0] = True  # two wordings of three beeps
    assert np.array_equal(relevant, expected)
    # a caption stating less matches more: "white noise" matches loud white noise, "loud white noise" needs loud
    relevant = relevance(["white noise", "loud white noise"], [{"family": "noise", "noise_colour": "white"},
                                                               {"family": "noise", "noise_colour": "white",
                                                                "loudness": "loud"}])
    assert np.array_equal(relevant, [[True, True], [False, True]])


def test_recall_and_average_precision_by_hand() -> None:
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.7, 0.6]])
    relevant = np.eye(3, dtype=bool)
    assert recall_at(similarity, relevant, 1) == pytest.approx(1 / 3)  # only row 0 ranks its item first
    assert recall_at(similarity, relevant, 2) == pytest.approx(1.0)
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False])) == \
        pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(average_precision(np.array([0.1, 0.2]), np.array([False, False])))
    assert chance_recall(np.array([1]), 4, 2) == pytest.approx(0.5)
    assert chance_recall(np.array([3]), 4, 2) == pytest.approx(1.0)


def test_retrieval_report_perfect_and_shuffled_embeddings() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(5, 8))
    perfect = retrieval_report(audio * 3.0, audio, CAPTIONS, LABELS)  # scale does not matter: cosine
    assert perfect["matched"]["t2a_r@1"] == perfect["matched"]["a2t_r@1"] == 1.0
    assert perfect["strict"]["t2a_r@1"] == 1.0 and perfect["attributes"]["pitch_hz"]["map"] == 1.0
    assert perfect["paired_cosine"] == pytest.approx(1.0)
    assert set(perfect["attributes"]) == {"event", "count", "noise_colour", "loudness", "waveform", "pitch_hz",
                                          "envelope", "sound", "tempo_bpm"}
    assert perfect["t2a_r@10_by_family"]["tone"] == 1.0
    order = [4, 3, 2, 1, 0]
    wrong = retrieval_report(audio[order], audio, CAPTIONS, LABELS)  # text i embeds like clip 4 - i
    assert wrong["matched"]["t2a_r@1"] == pytest.approx(1 / 5)  # only the middle caption (clip 2) lands
    assert wrong["attributes"]["pitch_hz"]["map"] < 1.0
    with pytest.raises(ValueError, match="N paired rows"):
        retrieval_report(audio[:4], audio, CAPTIONS, LABELS)


def test_shuffled_clap_score_is_the_mean_over_mismatched_pairs() -> None:
    rng = np.random.default_rng(1)
    text, audio = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    t = text / np.linalg.norm(text, axis=1, keepdims=True)
    a = audio / np.linalg.norm(audio, axis=1, keepdims=True)
    cosines = t @ a.T
    expected = cosines[~np.eye(6, dtype=bool)].mean()
    assert clap_score_shuffled(text, audio) == pytest.approx(expected)
    assert clap_score(audio, audio) > clap_score_shuffled(audio, audio)
    with pytest.raises(ValueError, match=">= 2 paired"):
        clap_score_shuffled(text[:1], audio[:1])


def test_retrieval_command(tmp_path: Path, tiny_manifest: Path, tiny_clap_dir: Path, capsys) -> None:
    out = tmp_path / "retrieval.json"
    np.random.seed(0)  # the tiny CLAP crops its 2.5 s clips to 1 s at random (rand_trunc), from numpy's global RNG
    assert main(["retrieval", "--clap", str(tiny_clap_dir), "--manifest", str(tiny_manifest / "valid.jsonl"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["clips"] == 8 and 0.0 <= report["matched"]["t2a_r@10"] <= 1.0
    assert f"R@10 {report['matched']['t2a_r@10']:.3f}" in printed and "mAP per attribute" in printed
    # the command's figures are the report of the embedder's own embeddings of these clips and captions
    from tokenlm.eval.embedders import load_embedder
    from tokenlm.eval.inputs import load_clip, read_entries

    entries = read_entries(tiny_manifest / "valid.jsonl")
    clap = load_embedder("clap", tiny_clap_dir)
    np.random.seed(0)
    frames = clap.embed_clips([load_clip(entry["path"]) for entry in entries])
    audio = np.concatenate([f.mean(0, keepdims=True) for f in frames])
    captions = [e["description"] for e in entries]
    expected = retrieval_report(clap.embed_texts(captions), audio, captions, [e["labels"] for e in entries])
    assert report["matched"] == pytest.approx(expected["matched"]) and report["strict"] == pytest.approx(
        expected["strict"])
    assert report["paired_cosine"] == pytest.approx(expected["paired_cosine"])
    assert main(["retrieval", "--clap", str(tmp_path / "missing"), "--manifest",
                 str(tiny_manifest / "valid.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
