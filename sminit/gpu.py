"""The NVIDIA check: GPUs visible, GPUs the instance type should have, bundled driver libraries."""

from __future__ import annotations

import os

from sminit.plan import JOB_MODES, Plan


def _family(prefix: str, sizes: dict[str, int]) -> dict[str, int]:
    return {f"ml.{prefix}.{size}": count for size, count in sizes.items()}


_SMALL_1 = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}
# GPUs per SageMaker instance type.
GPU_COUNTS: dict[str, int] = {
    # The SageMaker Python SDK's instance_gpu_info.json (T4, A10G, K80, V100, A100, H100).
    **_family("g4dn", {**_SMALL_1, "12xlarge": 4}),
    **_family("g5", {**_SMALL_1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_family("p2", {"xlarge": 1, "8xlarge": 8, "16xlarge": 16}),
    **_family("p3", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
    "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
    # EC2's accelerated-computing instance tables (L4, L40S, H200, B200).
    **_family("g6", {**_SMALL_1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_family("g6e", {**_SMALL_1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "ml.p5e.48xlarge": 8,
    "ml.p5en.48xlarge": 8,
    "ml.p6-b200.48xlarge": 8,
    # SageMaker local mode (the Python SDK's instance_type): local_gpu means at least one GPU,
    # local none (known_instance_type).
    "local_gpu": 1,
}

# Families without an NVIDIA GPU (any size): general purpose, compute, memory, burstable, AWS
# Trainium and Inferentia, AMD and Gaudi accelerators. Anything else unlisted is unknown.
OTHER_FAMILIES = frozenset(
    "m4 m5 m5d m6g m6gd m6i m6id m7g m7i m7i-flex c4 c5 c5d c5n c6g c6gd c6gn c6i c6id c6in c7g c7i "
    "r5 r5d r6g r6gd r6i r6id r7g r7i r7iz x1 x2iedn t2 t3 trn1 trn1n trn2 inf1 inf2 g4ad dl1".split()
)


def known_instance_type(name: str) -> bool:
    """A type this table knows: one of GPU_COUNTS, or any size of a family without NVIDIA GPUs."""
    parts = name.split(".")
    return name in GPU_COUNTS or name == "local" or (
        len(parts) == 3 and parts[0] == "ml" and parts[1] in OTHER_FAMILIES)


# Sizes instance families come in, to name the known types an unknown one may be a typo of.
SIZES = ("medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "9xlarge", "12xlarge", "16xlarge",
         "18xlarge", "24xlarge", "32xlarge", "48xlarge", "metal")


def closest_instance_type(name: str) -> str | None:
    """The known type an unknown name is most likely a typo of (ml.p4d.24xlarg -> ml.p4d.24xlarge)."""
    import difflib  # --check only

    known = [*GPU_COUNTS, *(f"ml.{family}.{size}" for family in sorted(OTHER_FAMILIES) for size in SIZES)]
    found = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return found[0] if found else None


DEFAULT_LIB_DIRS = (
    "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib",
    "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu", "/usr/local/nvidia/lib", "/usr/local/nvidia/lib64",
)
DRIVER_LIBRARIES = ("libcuda.so.", "libnvidia-ml.so.")


class GpuReport:
    """What the check found; `problem` is set when fewer GPUs are visible than required."""

    def __init__(self) -> None:
        self.visible = 0
        self.expected: int | None = None
        self.expected_from = ""
        self.instance_type: str | None = None  # current_instance_type from resourceconfig.json (train mode)
        self.driver_version: str | None = None
        self.warnings: list[str] = []
        self.problem: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"visible": self.visible, "expected": self.expected, "driver_version": self.driver_version}


def visible_gpus(dev_dir: str, hidden: bool) -> int:
    """Device files named nvidia<N>; none at all when hidden (NVIDIA_VISIBLE_DEVICES void or none)."""
    if hidden:
        return 0
    try:
        names = os.listdir(dev_dir)
    except OSError:
        return 0
    return sum(1 for name in names if name.startswith("nvidia") and name[6:].isdigit() and name[6:].isascii())


def host_driver_version(path: str) -> str | None:
    """The kernel module's version from /proc/driver/nvidia/version (`... Kernel Module  535.104.05 ...`)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            for word in line.split():
                if word[0].isdigit() and "." in word and word.replace(".", "").isdigit():
                    return word
    return None


def expected_gpus(requirement: str, mode: str, instance_type: object) -> tuple[int | None, str]:
    """GPUs required and by what: --require-gpus N, else the job's instance type (a training job's
    resourceconfig.json, a processing job's processingjobconfig.json, as the plan read them)."""
    if requirement.isdigit():
        return int(requirement), "--require-gpus"
    if requirement != "auto" or mode not in JOB_MODES or not isinstance(instance_type, str):
        return None, ""  # a value that is no string is said with the config files' shapes
    return GPU_COUNTS.get(instance_type), instance_type


def bundled_drivers(lib_dirs: list[str], host_version: str) -> list[str]:
    """Driver libraries in the image whose version is not the host's (SageMaker forbids them)."""
    found = []
    for folder in lib_dirs:
        parent, name = os.path.split(folder.rstrip("/"))
        if name == "compat" and os.path.basename(parent).startswith("cuda"):
            continue  # /usr/local/cuda*/compat: the legitimate forward-compatibility package
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in entries:
            for prefix in DRIVER_LIBRARIES:
                version = entry[len(prefix):]
                if entry.startswith(prefix) and "." in version and version != host_version:
                    found.append(f"bundled NVIDIA driver library {os.path.join(folder, entry)} "
                                 f"(version {version}) "
                                 f"differs from the host driver {host_version}: SageMaker forbids bundling "
                                 "drivers, expect 'Driver/library version mismatch'")
    return found


def gpu_report(plan: Plan) -> GpuReport:
    """Run every part of the check (README: Using sminit on SageMaker, GPUs)."""
    report = GpuReport()
    requirement, mode = plan.require_gpus, plan.mode
    report.visible = visible_gpus(plan.dev_dir, plan.gpus_hidden)
    report.expected, report.expected_from = expected_gpus(requirement, mode, plan.instance_type)
    if requirement == "auto" and mode in JOB_MODES:
        report.instance_type = report.expected_from or None
    report.driver_version = host_driver_version(plan.driver_version_file)
    if report.expected is not None and report.visible < report.expected:
        report.problem = (f"GPU check failed: {report.visible} NVIDIA GPUs visible in {plan.dev_dir}, "
                          f"{report.expected} required by {report.expected_from}: give the container "
                          "its GPUs (docker run --gpus all), or, running without them on purpose "
                          "(locally, on a CPU), pass --require-gpus none (SMINIT_REQUIRE_GPUS=none)")
    if report.driver_version:
        lib_dirs = plan.lib_dirs or [*DEFAULT_LIB_DIRS, *plan.ld_library_path.split(":")]
        report.warnings.extend(bundled_drivers([d for d in lib_dirs if d], report.driver_version))
    return report
