"""The ``stemmaster`` command line.

User errors (``StemmasterError``) print one line on stderr and exit 1; Ctrl-C
exits 130 after the job has cleaned up. Heavy modules are imported inside the
commands so ``stemmaster --help`` stays quick and imports neither torch nor textual.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stemmaster.errors import StemmasterError

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM (a closed SSH session, a `kill`): unwound like Ctrl-C, so every job cleans up."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise Terminated()


def _workspace(args):
    from stemmaster.workspace import Workspace, default_workspace

    return Workspace(Path(args.workspace) if args.workspace else default_workspace())


def _settings_from_args(base, args):
    """Apply --profile, --target-lufs, --ceiling-dbtp, --sample-rate to master settings."""
    from dataclasses import replace

    settings = base
    if getattr(args, "profile", None):
        settings = settings.with_profile(args.profile)
    changes = {}
    if getattr(args, "target_lufs", None) is not None:
        changes["target_lufs"] = args.target_lufs
    if getattr(args, "ceiling_dbtp", None) is not None:
        changes["ceiling_dbtp"] = args.ceiling_dbtp
    if changes:
        # an explicit number is no longer the profile's
        settings = settings.with_bus(profile=None, **changes)
    if getattr(args, "sample_rate", None):
        settings = replace(settings, export=replace(settings.export, sample_rate=args.sample_rate))
    return settings


def _print_master_summary(outcome, out=None) -> None:
    out = out or sys.stdout
    m = outcome.report["master"]
    print(f"master: {m['integrated_lufs']:.1f} LUFS integrated, {m['true_peak_dbtp']:.2f} dBTP true peak, "
          f"LRA {m['loudness_range_lu']:.1f} LU, PLR {m['plr_db']:.1f} dB "
          f"(target {outcome.report['target_lufs']:.1f} LUFS, ceiling {outcome.report['ceiling_dbtp']:.1f} dBTP)",
          file=out)
    for f in outcome.master_files:
        print(f"  {f}", file=out)
    print(f"  {outcome.folder / 'report.md'}", file=out)


def _run_with_progress(label, fn):
    from stemmaster.progress import ProgressBar

    bar = ProgressBar(label)
    try:
        return fn(bar)
    finally:
        bar.close()


# -- commands ---------------------------------------------------------------

def cmd_new(args) -> int:
    ws = _workspace(args)
    roles = dict(_parse_pair(r, "--role") for r in (args.role or []))
    if args.render:
        if roles:
            raise StemmasterError("--role applies to --stems imports")
        project = _run_with_progress("import", lambda p: ws.create_from_render(args.name, Path(args.render), progress=p))
    else:
        project = _run_with_progress("import", lambda p: ws.create_from_stems(
            args.name, Path(args.stems), sample_rate=args.sample_rate, roles=roles or None, progress=p))
    print(f"created project {project.name!r} in {ws.project_dir(project.name)} "
          f"({project.source_kind}, {project.sample_rate} Hz, {len(project.stems)} stems)")
    for s in project.stems:
        print(f"  {s.name:<20} {s.role}")
    return 0


def _parse_pair(text: str, flag: str) -> tuple[str, str]:
    if "=" not in text:
        raise StemmasterError(f"{flag} {text!r}: expected NAME=VALUE")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def cmd_list(args) -> int:
    ws = _workspace(args)
    entries = ws.list_entries()
    if not entries:
        print(f"no projects in {ws.root}")
        return 0
    print(f"{'project':<24} {'source':<7} {'stems':>5} {'renders':>7}  last master")
    from stemmaster.errors import ProjectError

    for name, project in entries:
        if isinstance(project, ProjectError):
            print(f"{name:<24} unreadable: {project}")
            continue
        last = project.renders[-1] if project.renders else None
        last_txt = (f"{last.integrated_lufs:.1f} LUFS {last.true_peak_dbtp:.2f} dBTP ({last.profile or 'custom'})"
                    if last else "-")
        print(f"{project.name:<24} {project.source_kind:<7} {len(project.stems):>5} {len(project.renders):>7}  {last_txt}")
    return 0


def _separation_options(args, record=None):
    """SeparationOptions from the separation flags (a recorded separation's where not given)."""
    from stemmaster.separate import SeparationOptions

    repo = getattr(args, "model_repo", None)
    given = {"model": getattr(args, "model", None), "device": getattr(args, "device", None),
             "shifts": getattr(args, "shifts", None), "overlap": getattr(args, "overlap", None),
             "segment_s": getattr(args, "segment", None), "residual_into": getattr(args, "residual", None),
             "model_repo": Path(repo) if repo else None}
    if record is not None:
        return SeparationOptions.from_record(record, **given)
    return SeparationOptions(**{k: v for k, v in given.items() if v is not None})


def _separate(ws, project, options) -> bool:
    from stemmaster.separate import separate_project

    return _run_with_progress("separate", lambda p: separate_project(
        project, ws.project_dir(project.name), options, save=ws.save, progress=p))


def cmd_separate(args) -> int:
    ws = _workspace(args)
    project = ws.load(args.name)
    options = _separation_options(args)
    did = _separate(ws, project, options)
    rec = project.separation
    if did:
        print(f"separated {project.name!r} with {rec.model} ({rec.model_checksum}): "
              f"residual {rec.residual_db:.1f} dB, folded into "
              f"{'other' if rec.settings.get('residual_into') == 'other' else 'its own stem'}")
    else:
        print(f"{project.name!r}: the stems were already separated by {rec.model} ({rec.model_checksum}) "
              f"from this render with these settings; nothing to do")
    for s in project.stems:
        print(f"  {s.name:<20} {s.role:<7} {s.path}")
    return 0


def cmd_master(args) -> int:
    from stemmaster import judge
    from stemmaster.separate import needs_separation

    ws = _workspace(args)
    project = ws.load(args.name)
    folder = ws.project_dir(project.name)
    if needs_separation(project, folder):
        # a render project without current stems: separate first, as last asked (or the defaults)
        _separate(ws, project, _separation_options(args, project.separation))
    if not project.stems:
        raise StemmasterError(f"project {project.name!r} has no stems")
    from stemmaster.pipeline import project_settings

    _settings_from_args(project_settings(project), args)  # a bad setting fails here, before any work
    render_id = ws.next_render_id(project)
    judged = _run_with_progress("master", lambda p: judge.master_project(
        project, folder, render_id, save=ws.save, settings_transform=lambda s: _settings_from_args(s, args),
        auto=args.auto, progress=p))
    if judged.auto is not None:
        _print_auto(judged.auto, f"recorded in {project.name!r}")
    print(f"render {render_id} of {project.name!r}")
    _print_judgement(judged.before, judged.auto_report)
    _print_master_summary(judged.outcome)
    return 0


def _print_auto(result, where: str) -> None:
    print(f"--auto: {len(result.applied)} repair(s) {where}")
    for line in result.applied:
        print(f"  + {line}")
    for line in result.skipped:
        print(f"  - {line}")


def _print_judgement(before, auto) -> None:
    if before.verdict == "fix the mix first":
        print("verdict: fix the mix first (mastered anyway, and marked so in the report):")
        for reason in before.reasons:
            print(f"  - {reason}")
    else:
        print(f"verdict: {before.verdict}")
    if auto is not None:
        for row in auto["compare"]:
            if row["new"]:
                print(f"  new: {row['stem']}/{row['id']} {row['after']:.1f} {row['unit']}")
                continue
            after_text = "n/a" if row["after"] is None else f"{row['after']:.1f}"
            state = "resolved" if row["resolved"] else ("improved" if row["improved"] else "not improved")
            print(f"  {row['stem']}/{row['id']}: {row['before']:.1f} -> {after_text} {row['unit']} ({state})")


def cmd_diagnose(args) -> int:
    from stemmaster import judge
    from stemmaster.report import json_safe

    ws = _workspace(args)
    target = args.target
    if _is_name(target) and ws.exists(target):
        project = ws.load(target)
        if not project.stems:
            from stemmaster.separate import source_render

            d = judge.diagnose_path(source_render(project, ws.project_dir(project.name)))
        else:
            d = judge.diagnose_project(project, ws.project_dir(project.name))
        where = f"project {project.name!r}"
    else:
        path = Path(target)
        if not path.exists():
            raise StemmasterError(f"{target}: no project of that name in {ws.root} and no such file or folder")
        d = judge.diagnose_path(path)
        where = str(path)
    if args.json:
        data = d.to_dict()
        print(json.dumps(json_safe({"verdict": data["verdict"], "reasons": data["reasons"], "source": data["source"],
                                    "findings": data["findings"]}), indent=2, ensure_ascii=False))
        return 0
    print(where)
    for line in judge.diagnosis_lines(d):
        print(line)
    return 0


def _is_name(text: str) -> bool:
    from stemmaster.workspace import check_project_name

    try:
        check_project_name(text)
        return True
    except StemmasterError:
        return False


def cmd_export(args) -> int:
    from stemmaster.deliver.export import export_render

    ws = _workspace(args)
    project = ws.load(args.name)
    metadata = {k: v for k, v in (("title", args.title), ("artist", args.artist), ("album", args.album),
                                  ("isrc", args.isrc)) if v}
    outcome = _run_with_progress("export", lambda p: export_render(
        project, ws.project_dir(project.name), render_id=args.render,
        versions=[v.strip() for v in args.versions.split(",") if v.strip()] + list(args.mix or []),
        formats=[f.strip() for f in args.formats.split(",") if f.strip()], out_rate=args.rate,
        reference=Path(args.reference) if args.reference else None, stem_masters=args.stem_masters,
        metadata=metadata, clean_edges=not args.no_clean, progress=p))
    print(f"deliverables of {project.name!r} in {outcome.folder} ({outcome.seconds:.1f} s)")
    for v in outcome.versions:
        extra = f", safety limiter {v['safety_limiter_db']:.2f} dB" if v["safety_limiter_db"] > 0 else ""
        print(f"  {v['version']}: {v['description']}{extra}")
    for f in outcome.files:
        print(f"  {f['file']}: {f['integrated_lufs']:.1f} LUFS, {f['true_peak_dbtp']:.2f} dBTP")
    if outcome.reference:
        print(f"  matched to {outcome.reference['file']}")
    print(f"  {outcome.folder / 'manifest.json'}")
    return 0


def cmd_rename(args) -> int:
    project = _workspace(args).rename(args.name, args.new_name)
    print(f"renamed {args.name!r} to {project.name!r}")
    return 0


def cmd_delete(args) -> int:
    ws = _workspace(args)
    if not args.yes:
        raise StemmasterError(f"deleting {args.name!r} removes {ws.project_dir(args.name)} and every render in it; "
                              "add --yes to confirm")
    ws.delete(args.name)
    print(f"deleted project {args.name!r}")
    return 0


def cmd_batch(args) -> int:
    from stemmaster.batch import run_cli

    return run_cli(args)


def cmd_tui(args) -> int:
    from tui.app import main as tui_main

    return tui_main(Path(args.workspace) if args.workspace else None)


def _print_chain(stem) -> None:
    state = "muted" if stem.mute else ("solo" if stem.solo else f"{stem.gain_db:+.1f} dB")
    print(f"{stem.name} ({stem.role}, {state})")
    if not stem.chain:
        print("  no repair")
    for kind, entry in stem.chain.items():
        values = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "enabled")
        print(f"  {kind}{'' if entry.get('enabled', True) else ' (off)'}: {values}")


def cmd_repair(args) -> int:
    from stemmaster import repair
    from stemmaster.roles import validate_role

    ws = _workspace(args)
    project = ws.load(args.name)
    if not project.stems:
        raise StemmasterError(f"project {project.name!r} has no stems yet")
    if args.stem is None:
        if args.set or args.remove or args.order or args.reset or args.gain_db is not None or args.role \
                or args.mute is not None or args.solo is not None:
            raise StemmasterError("name the stem to change with --stem (stems: "
                                  f"{', '.join(s.name for s in project.stems)})")
        for stem in project.stems:
            _print_chain(stem)
        return 0
    matches = [s for s in project.stems if s.name == args.stem] or \
              [s for s in project.stems if s.name.lower() == args.stem.lower()]
    if not matches:
        raise StemmasterError(f"project {project.name!r} has no stem {args.stem!r} "
                              f"(stems: {', '.join(s.name for s in project.stems)})")
    stem = matches[0]
    changed = False
    if args.role:
        stem.role = validate_role(args.role)
        changed = True
    if args.reset:
        stem.chain = repair.default_chain(stem.role)
        changed = True
    for kind in args.remove or []:
        stem.chain = repair.remove(stem.chain, kind)
        changed = True
    for item in args.set or []:
        key, value = _parse_pair(item, "--set")
        stem.chain = repair.set_value(stem.chain, key, value)
        changed = True
    if args.order:
        stem.chain = repair.reorder(stem.chain, [k.strip() for k in args.order.split(",") if k.strip()])
        changed = True
    if args.gain_db is not None:
        from stemmaster.dsp.processor import check_range

        check_range(stem.name, "gain_db", args.gain_db, -60.0, 24.0)
        stem.gain_db = float(args.gain_db)
        changed = True
    if args.mute is not None:
        stem.mute, changed = args.mute, True
    if args.solo is not None:
        stem.solo, changed = args.solo, True
    repair.build_chain(stem.chain, stem=stem.name)  # every setting valid before anything is saved
    if changed:
        ws.save(project)
    _print_chain(stem)
    return 0


def cmd_report(args) -> int:
    ws = _workspace(args)
    project = ws.load(args.name)
    if not project.renders:
        raise StemmasterError(f"project {project.name!r} has no renders yet: run `stemmaster master {project.name}`")
    record = project.renders[-1]
    if args.render:
        match = [r for r in project.renders if r.id == args.render]
        if not match:
            raise StemmasterError(f"project {project.name!r} has no render {args.render!r} "
                                  f"(renders: {', '.join(r.id for r in project.renders)})")
        record = match[0]
    folder = ws.project_dir(project.name) / record.folder
    name = "report.json" if args.json else "report.md"
    path = folder / name
    if not path.is_file():
        raise StemmasterError(f"{path}: missing")
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def cmd_analyze(args) -> int:
    from stemmaster.audio_io import read_audio
    from stemmaster.meters.analysis import measure
    from stemmaster.report import json_safe

    audio, rate = read_audio(Path(args.file))
    metrics = measure(audio, rate).to_dict()
    if args.json:
        print(json.dumps(json_safe({"file": str(args.file), **metrics}), indent=2))
        return 0
    print(args.file)
    for key, value in metrics.items():
        shown = "n/a" if value is None else (f"{value:.2f}" if isinstance(value, float) else value)
        print(f"  {key:<22} {shown}")
    return 0


def cmd_remaster(args) -> int:
    from stemmaster.remaster import remaster

    src = Path(args.input)
    outcome = _run_with_progress("remaster", lambda p: remaster(
        src, Path(args.output), settings_transform=lambda s: _settings_from_args(s, args), progress=p,
        separation=_separation_options(args), auto=args.auto))
    print(f"remastered {src} -> {outcome.folder}")
    diagnosis = outcome.report.get("diagnosis")
    if diagnosis:
        from stemmaster.judge import diagnosis_from_dict

        auto = outcome.report.get("auto")
        if auto:
            print(f"--auto: {len(auto['applied'])} repair(s) applied")
        _print_judgement(diagnosis_from_dict(diagnosis), auto)
    _print_master_summary(outcome)
    return 0


def cmd_demo(args) -> int:
    from stemmaster.demo_job import run_demo

    ws = _workspace(args)
    outcome = _run_with_progress("demo", lambda p: run_demo(
        ws, Path(args.song_dir), duration_s=args.duration_s,
        settings_transform=lambda s: _settings_from_args(s, args), progress=p))
    print(f"demo song (stems and stereo sum) in {Path(args.song_dir).resolve()}")
    print(f"project 'demo', render {outcome.report['render']}")
    _print_master_summary(outcome)
    return 0


# -- parser -----------------------------------------------------------------

def _add_master_options(p: argparse.ArgumentParser) -> None:
    from stemmaster.profiles import PROFILES

    p.add_argument("--profile", choices=list(PROFILES), help="release profile (target and ceiling)")
    p.add_argument("--target-lufs", type=float, help="integrated loudness target, overrides the profile")
    p.add_argument("--ceiling-dbtp", type=float, help="true-peak ceiling, overrides the profile")
    p.add_argument("--sample-rate", type=int, help="output sample rate (default: the project's)")


def _add_separation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="Demucs model: htdemucs (default), htdemucs_ft, htdemucs_6s, mdx_extra, "
                                   "or a name in --model-repo")
    p.add_argument("--model-repo", metavar="DIR",
                   help="folder of Demucs checkpoints (<sig>-<checksum>.th, <name>.yaml); "
                        "default $STEMMASTER_MODEL_REPO, else demucs' own download cache")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where the model runs (default auto)")
    p.add_argument("--shifts", type=int, help="random time shifts averaged (default 1; more is slower, a bit better)")
    p.add_argument("--overlap", type=float, help="overlap of the model's segments (default 0.25)")
    p.add_argument("--segment", type=float, metavar="S", help="segment length in seconds (default: the model's)")
    p.add_argument("--residual", choices=["other", "stem"],
                   help="what the model left out goes into 'other' (default) or a stem of its own")


def _add_batch_parser(sub) -> None:
    """The ``batch`` subcommand (stemmaster.batch is imported only when it runs: it is not light)."""
    from stemmaster.profiles import PROFILES

    p = sub.add_parser("batch", help="every song in a folder (stereo files, stems folders) to a master, "
                                     "in parallel and resumable, locally or on Ray")
    p.add_argument("input_dir", metavar="INPUT_DIR", help="stereo audio files (separated first) and folders of stems")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="a folder per song, done.json when finished, summary.csv and summary.md")
    p.add_argument("--profile", choices=list(PROFILES), help="release profile (target and ceiling)")
    p.add_argument("--auto", action="store_true", help="apply each song's diagnosis' repairs before mastering")
    p.add_argument("--no-checks", action="store_true", help="skip the release checks (faster)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="songs at once: worker processes (default 1), or a local Ray instance's CPUs (default all)")
    p.add_argument("--separations", type=int, metavar="N",
                   help="separations at once (default 1; on Ray, the cluster's GPUs, or 1 without)")
    p.add_argument("--separation-threads", type=int, metavar="N",
                   help="torch threads of a CPU separation (default: this machine's cores); the same number "
                        "gives the same stems locally and on Ray")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a local instance, or the cluster at ADDRESS (needs the 'ray' extra); "
                        "give it after INPUT_DIR or as --ray=ADDRESS")
    _add_separation_options(p)
    p.set_defaults(func=cmd_batch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stemmaster", description="Stem-aware remastering workstation.")
    parser.add_argument("--workspace", help="folder of projects (default: $STEMMASTER_WORKSPACE or ./projects)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("new", help="create a project from a stereo render or a folder of stems")
    p.add_argument("name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--render", metavar="FILE", help="a stereo render (WAV/FLAC/MP3/OGG)")
    src.add_argument("--stems", metavar="DIR", help="a folder of stems (WAV/FLAC/AIFF/MP3/OGG)")
    p.add_argument("--role", action="append", metavar="FILE=ROLE",
                   help="override a stem's role (vocals, drums, bass, other); repeatable")
    p.add_argument("--sample-rate", type=int, help="project sample rate (default: the stems' most common rate)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("list", help="list the projects in the workspace")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("separate", help="separate a render project into stems with Demucs (once)")
    p.add_argument("name")
    _add_separation_options(p)
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser("master", help="render a master of a project (separating a render project first if needed)")
    p.add_argument("name")
    _add_master_options(p)
    p.add_argument("--model-repo", metavar="DIR",
                   help="folder of Demucs checkpoints, if a render project must be separated first")
    p.add_argument("--auto", action="store_true",
                   help="turn the diagnosis into repair settings (recorded in the project), then compare after")
    p.set_defaults(func=cmd_master)

    p = sub.add_parser("diagnose", help="what is wrong with a project, a file or a stems folder, and what to do")
    p.add_argument("target", metavar="NAME|FILE|DIR")
    p.add_argument("--json", action="store_true", help="print the verdict and findings as JSON")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("export", help="deliverables of a render: versions, stem masters, formats, manifest")
    p.add_argument("name")
    p.add_argument("--render", help="render id (default: the latest)")
    p.add_argument("--versions", default="main",
                   help="comma-separated: main, instrumental, acapella, tv, performance (default main)")
    p.add_argument("--mix", action="append", metavar="NAME=STEM:DB,STEM:mute,...",
                   help="a custom version of stem levels, e.g. club=vocals:-2,drums:+1; repeatable")
    p.add_argument("--formats", default="wav24", help="comma-separated: wav16, wav24, wav32f, flac16, flac24, mp3")
    p.add_argument("--rate", type=int, choices=[44100, 48000], help="output sample rate (default: the render's)")
    p.add_argument("--reference", metavar="FILE", help="steer EQ, loudness and width toward a released track")
    p.add_argument("--stem-masters", action="store_true", help="also each stem's share of the master (they sum to it)")
    p.add_argument("--no-clean", action="store_true", help="leave the start and end as they are")
    p.add_argument("--title")
    p.add_argument("--artist")
    p.add_argument("--album")
    p.add_argument("--isrc")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("rename", help="rename a project")
    p.add_argument("name")
    p.add_argument("new_name")
    p.set_defaults(func=cmd_rename)

    p = sub.add_parser("delete", help="delete a project and its renders (asks for --yes)")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="confirm: delete the project folder")
    p.set_defaults(func=cmd_delete)

    _add_batch_parser(sub)

    p = sub.add_parser("tui", help="the terminal UI: projects, repairs, jobs and reports, keyboard first")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("repair", help="show or change the stems' repair chains (applied by `master`)")
    p.add_argument("name")
    p.add_argument("--stem", help="the stem to change (without it: show every stem's chain)")
    p.add_argument("--set", action="append", metavar="KIND.SETTING=VALUE",
                   help="e.g. deesser.max_reduction_db=8; adds the processor if absent; repeatable")
    p.add_argument("--remove", action="append", metavar="KIND", help="take a processor out of the chain")
    p.add_argument("--order", metavar="KIND,KIND,...", help="the chain's processing order")
    p.add_argument("--reset", action="store_true", help="back to the role's default chain")
    p.add_argument("--role", help="change the stem's role (vocals, drums, bass, other)")
    p.add_argument("--gain-db", type=float, help="the stem's level into the mix")
    p.add_argument("--mute", dest="mute", action="store_const", const=True)
    p.add_argument("--unmute", dest="mute", action="store_const", const=False)
    p.add_argument("--solo", dest="solo", action="store_const", const=True)
    p.add_argument("--unsolo", dest="solo", action="store_const", const=False)
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("report", help="print the report of a project's latest (or a given) render")
    p.add_argument("name")
    p.add_argument("--render", help="render id, e.g. 002")
    p.add_argument("--json", action="store_true", help="print report.json")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("analyze", help="loudness, true peak and stereo measures of any audio file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("remaster", help="one shot: a render or a folder of stems to a master, report and stems")
    p.add_argument("input", help="a stereo render (separated with Demucs) or a folder of stems")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--auto", action="store_true", help="apply the diagnosis' repairs before mastering")
    _add_master_options(p)
    _add_separation_options(p)
    p.set_defaults(func=cmd_remaster)

    p = sub.add_parser("demo", help="synthesise the demo song and master it")
    p.add_argument("--song-dir", default="demo-song", help="where the demo stems and their sum are written")
    p.add_argument("--duration-s", type=float, default=40.0, help="length of the demo song (10-60 s)")
    _add_master_options(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        previous = None
    try:
        return args.func(args)
    except StemmasterError as exc:
        print(f"stemmaster: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # a full disk, a vanished folder: the file and the reason, one line
        from stemmaster.atomic import describe_os_error

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"stemmaster: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"stemmaster: {what}; the job was stopped and nothing half-written was kept", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
