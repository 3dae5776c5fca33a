"""models/fetch's helper on the host Python (3.11+, standard library only).

    modeltool.py vars MANIFEST     print manifest.toml's pins as shell assignments, for `eval`
"""
import shlex
import sys
import tomllib


def shell_vars(path):
    with open(path, "rb") as f:
        m = tomllib.load(f)
    out = {}
    for s in m["source"]:
        k = s["id"].replace("-", "_")
        out |= {f"src_{k}_req": s["requirement"], f"src_{k}_file": s["filename"],
                f"src_{k}_sha256": s["sha256"]}
    for v in m["venv"]:
        k = v["name"].replace("-", "_")
        out[f"venv_{k}_req"] = v["requirements"]
    for mo in m["model"]:
        k = mo["name"].split("_")[0]  # ssd, yunet, sface
        out |= {f"{k}_file": mo["file"], f"{k}_member": mo["path_in_source"],
                f"{k}_sha256": mo.get("sha256", "")}
        if "anchors" in mo:
            out |= {"anchors_file": mo["anchors"]["file"], "anchors_sha256": mo["anchors"]["sha256"]}
    for k, v in out.items():
        print(f"{k}={shlex.quote(v)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "vars":
        shell_vars(sys.argv[2])
    else:
        sys.exit(__doc__)
