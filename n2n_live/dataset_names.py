"""File names of exported Monte Carlo datasets: written by `n2n-export`, read by `n2n-train` and `n2n-denoise`.

The names follow Intel Open Image Denoise's training toolkit (why, and how its groups work: `n2n_live.commands.export`):

    <view>_<r>_<NNNN>spp.hdr.exr   .alb.exr   .nrm.exr      r = a, b, ... (independent realisations)
    <view>_<r>_<NNNN>spp.emi.exr                            the part of that realisation seen straight from a light
    <view>_<r>_ref.hdr.exr   .alb.exr   .nrm.exr           (the same reference for every r; its albedo and normal
                                                            are the clean features OIDN's --clean_aux trains with)

A plain OIDN folder (`<name>_<NNNN>spp.*.exr` + `<name>_ref.hdr.exr`) parses too, with the tag "".
"""
from __future__ import annotations

import re
from pathlib import Path

REALISATION_TAGS = "abcdefghijklmnopqrstuvwxyz"
FEATURES = ("hdr", "alb", "nrm", "emi")  # colour, albedo, normal, directly seen emission (noisy images only)

_NAME = re.compile(r"^(?P<group>.+)_(?:(?P<spp>\d+)spp|(?P<ref>ref|reference|gt|target))\.(?P<feature>hdr|alb|nrm|emi)\.exr$",
                   re.IGNORECASE)
_TAGGED = re.compile(r"^(?P<view>.+)_(?P<tag>[a-z])$")
_HDR = re.compile(r"\.hdr\.exr$", re.IGNORECASE)


def noisy_name(view: str, tag: str, spp: int, feature: str = "hdr") -> str:
    """`<view>_<tag>_<NNNN>spp.<feature>.exr`, feature in hdr (colour), alb (albedo), nrm (normal), emi (emission)."""
    return f"{view}_{tag}_{spp:04d}spp.{feature}.exr"


def reference_name(view: str, tag: str, feature: str = "hdr") -> str:
    """`<view>_<tag>_ref.<feature>.exr`, feature in hdr (colour), alb (albedo), nrm (normal)."""
    return f"{view}_{tag}_ref.{feature}.exr"


def parse_name(filename: str) -> tuple[str, str, int | None, str] | None:
    """(view, realisation tag, spp or None for a reference, feature) of a dataset file name, None for others.

    Names without a realisation tag (a plain OIDN dataset) give the tag "".
    """
    m = _NAME.match(filename)
    if m is None:
        return None
    group = m["group"]
    t = _TAGGED.match(group)
    view, tag = (t["view"], t["tag"]) if t else (group, "")
    return view, tag, (int(m["spp"]) if m["spp"] else None), m["feature"].lower()


def features_beside(colour: Path) -> tuple[Path, Path] | None:
    """(albedo, normal) files named after `X.hdr.exr` (X.alb.exr, X.nrm.exr) when both exist beside it, else None."""
    colour = Path(colour)
    if not _HDR.search(colour.name):
        return None
    stem = _HDR.sub("", colour.name)
    albedo, normal = colour.with_name(f"{stem}.alb.exr"), colour.with_name(f"{stem}.nrm.exr")
    return (albedo, normal) if albedo.is_file() and normal.is_file() else None


def emission_beside(colour: Path) -> Path | None:
    """X.emi.exr (n2n-export: the part of X seen straight from a light) when it exists beside `X.hdr.exr`, else None."""
    colour = Path(colour)
    emission = colour.with_name(_HDR.sub(".emi.exr", colour.name)) if _HDR.search(colour.name) else None
    return emission if emission is not None and emission.is_file() else None
