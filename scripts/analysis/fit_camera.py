"""Fit the camera and each shape's dimensions to a dataset's masks: the renderer's physical constants.

    python scripts/analysis/fit_camera.py ../shared/real_samples/Dataset_Student

Reads the masks of the root's labeled splits (train, val), takes every wholly visible object of
20 px or more, and fits the camera's height, aim and field of view and the cube, sphere and
cylinder dimensions so that the objects drawn by data/render.py at the observed places look as
big, as wide and as tall as observed (data/camera_fit.py). Prints the fit, its residuals and the
per-shape geometry of the observations beside that of the fitted camera at the same places. The
generator's defaults (data/render.py: CameraSpec, ObjectSizes) are this fit on the real videos.
"""
import argparse
import sys
from dataclasses import asdict

import numpy as np

from engine import run_cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="dataset root holding train/ and/or val/ with video_N/mask.npy")
    p.add_argument("--max_obs", type=int, default=300, help="observations used by the fit (evenly across shapes)")
    p.add_argument("--seed", type=int, default=0, help="which observations are drawn when there are more than --max_obs")
    p.add_argument("--scores_json", default=None, metavar="PATH", help="also write the fit as JSON to PATH")
    args = p.parse_args(argv)
    if args.max_obs < 3:
        p.error("--max_obs must be at least 3")
    from pipeline.cli import check_scores_json

    check_scores_json(args)  # before any work: never over a checkpoint, a mask or an input
    from data.camera_fit import fit_camera, predict
    from data.geometry import load_labeled_masks, observations, shape_geometry
    from data.render import Camera, Renderer
    from pipeline.cli import write_scores

    obs = observations(load_labeled_masks(args.root))
    fit = fit_camera(obs, max_obs=args.max_obs, seed=args.seed, verbose=1)
    print(f"camera: {fit['camera']}\nsizes: {fit['sizes']}\ncost {fit['cost']:.4f} over {fit['observations']} observations")
    print("median |relative error| per shape:", {k: {m: round(v, 3) for m, v in d.items()} for k, d in fit["residuals"].items()})
    renderer = Renderer(Camera(fit["camera"]), fit["sizes"])
    pred = np.array([q for q in (predict(renderer, o) for o in obs) if q is not None])
    seen, drawn = shape_geometry(obs), shape_geometry(pred)
    print(f"{'':<20}{'h seen':>8}{'h fit':>8}{'k seen':>8}{'k fit':>8}{'size seen':>10}{'size fit':>10}{'w/h seen':>9}{'w/h fit':>9}")
    for s in seen:
        a, b = seen[s], drawn[s]
        print(f"{s + ' (' + str(a['objects']) + ')':<20}{a['horizon h (row)']:>8.1f}{b['horizon h (row)']:>8.1f}"
              f"{a['slope k (px/row)']:>8.3f}{b['slope k (px/row)']:>8.3f}{a['size median (px)']:>10.1f}"
              f"{b['size median (px)']:>10.1f}{a['box w/h median']:>9.3f}{b['box w/h median']:>9.3f}")
    write_scores(args.scores_json, {"camera": asdict(fit["camera"]), "sizes": asdict(fit["sizes"]), "cost": fit["cost"],
                                    "residuals": fit["residuals"], "observations": fit["observations"]})
    return fit


if __name__ == "__main__":
    sys.exit(run_cli(main))
