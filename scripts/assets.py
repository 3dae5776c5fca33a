"""Small helpers for the asset fetch scripts (scripts/fetch-onnxruntime, scripts/fetch-media,
models/fetch). Standard library only; needs Python 3.11+ (tomllib).

    assets.py sha256 FILE...                      print "<sha256>  <file>" per file
    assets.py check FILE SHA256 [WHAT]             exit 1 with a clear message on mismatch
    assets.py extract ARCHIVE MEMBER DEST          copy one member of a .whl/.zip, .tar.gz or .deb
                                                   to DEST (atomically: DEST.tmp then rename)
    assets.py media MANIFEST DEST                  fetch every [[file]] of MANIFEST into DEST

Archives are read with zipfile/tarfile; a .deb goes through `dpkg-deb --fsys-tarfile` (always on
Debian). Nothing here reaches the network except through pip and apt-get, the registries' own
clients.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

PROG = os.environ.get("XL_ASSETS_PROG", "assets")


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"{PROG}: ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check(path, want, what=None):
    got = sha256(path)
    if got != want:
        die(f"{what or path}: sha256 mismatch\n  file: {path}\n  want: {want}\n  got:  {got}")


def _write_atomic(src_fileobj, dest):
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = f"{dest}.tmp.{os.getpid()}"
    with open(tmp, "wb") as out:
        shutil.copyfileobj(src_fileobj, out, 1 << 20)
    os.replace(tmp, dest)


def extract_many(archive, members, dest_dir):
    """Extract {member: dest_name} from archive into dest_dir; return {member: dest_path}."""
    wanted = dict(members)
    done = {}
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            names = set(z.namelist())
            for m, name in wanted.items():
                if m not in names:
                    die(f"{archive}: no member {m}")
                with z.open(m) as f:
                    done[m] = os.path.join(dest_dir, name)
                    _write_atomic(f, done[m])
        return done
    if archive.endswith(".deb"):
        # Stream the data tarball out of the .deb; read it once, sequentially.
        p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", archive], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)  # it complains of SIGPIPE if we stop early
        tar = tarfile.open(fileobj=p.stdout, mode="r|")
    elif archive.endswith((".tar.gz", ".tgz")):
        p = None
        tar = tarfile.open(archive, mode="r|gz")
    else:
        die(f"{archive}: unknown archive type")
    with tar:
        for ti in tar:
            name = wanted.get(ti.name)
            if name is None or not ti.isfile():
                continue
            done[ti.name] = os.path.join(dest_dir, name)
            _write_atomic(tar.extractfile(ti), done[ti.name])
            if len(done) == len(wanted):
                break
    if p is not None:
        p.stdout.close()
        p.wait()  # the sha256 of the .deb was checked before: its exit status tells nothing more
    missing = sorted(set(wanted) - set(done))
    if missing:
        die(f"{archive}: members not found: {', '.join(missing)}")
    return done


def pip_download(spec, dest_dir, python=sys.executable):
    """Download one archive with pip into dest_dir. spec: dict from a manifest."""
    cmd = [python, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
           "--disable-pip-version-check", "-q", "-d", dest_dir]
    if spec["kind"] == "pip-wheel":
        cmd += ["--only-binary=:all:"]
        if "platform" in spec:  # pin the exact wheel, whatever the host's python and arch
            cmd += ["--platform", spec["platform"], "--python-version", spec["python_version"],
                    "--implementation", "cp", "--abi", spec["abi"]]
    elif spec["kind"] == "pip-sdist":
        cmd += ["--no-binary=:all:"]
    cmd.append(spec["requirement"])
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def apt_download(spec, dest_dir):
    """`apt-get download PKG=VERSION` into dest_dir (runs apt-get update first if the lists
    don't know the version and we are root)."""
    pv = f"{spec['package']}={spec['version']}"
    known = subprocess.run(["apt-cache", "show", pv], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL).returncode == 0
    if not known:
        if os.geteuid() != 0:
            die(f"apt does not know {pv}: run `sudo apt-get update` first")
        log(f"apt does not know {pv} yet: apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=sys.stderr)
    cmd = ["apt-get", "download", "-qq", pv]
    if os.geteuid() == 0:
        # apt's sandbox user (_apt) cannot write into root's cache folder; without this apt
        # warns (harmlessly) and downloads as root anyway.
        cmd[1:1] = ["-o", "APT::Sandbox::User=root"]
    subprocess.run(cmd, cwd=dest_dir, check=True, stdout=sys.stderr)


def media(manifest_path, dest):
    import tomllib

    with open(manifest_path, "rb") as f:
        man = tomllib.load(f)
    archives = {a["id"]: a for a in man["archive"]}
    os.makedirs(dest, exist_ok=True)
    todo = {}
    for fe in man["file"]:
        path = os.path.join(dest, fe["name"])
        if os.path.isfile(path) and sha256(path) == fe["sha256"]:
            continue
        if os.path.exists(path):
            log(f"{fe['name']}: present but not the pinned bytes, fetching again")
        todo.setdefault(fe["archive"], []).append(fe)
    if not todo:
        log(f"all {len(man['file'])} media files present and verified in {dest}")
        return
    for aid, files in todo.items():
        a = archives[aid]
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
            log(f"downloading {a['filename']} ({a['kind']}) for {', '.join(f['name'] for f in files)}")
            if a["kind"] == "deb":
                apt_download(a, tmp)
            else:
                pip_download(a, tmp)
            arc = os.path.join(tmp, a["filename"])
            if not os.path.isfile(arc):
                die(f"{aid}: expected {a['filename']}, got {os.listdir(tmp)}")
            check(arc, a["sha256"], f"archive {a['filename']}")
            got = extract_many(arc, {f["member"]: f["name"] + ".part" for f in files}, tmp)
            for fe in files:
                part = got[fe["member"]]
                check(part, fe["sha256"], f"media file {fe['name']} (from {a['filename']})")
                os.replace(part, os.path.join(dest, fe["name"]))
            # the archive goes with the temporary folder: only the files we need are kept
        log(f"{aid}: {len(files)} file(s) in {time.monotonic() - t0:.1f} s")
    log(f"all {len(man['file'])} media files present and verified in {dest}")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "sha256":
        for p in args:
            print(f"{sha256(p)}  {p}")
    elif cmd == "check" and len(args) in (2, 3):
        check(args[0], args[1], args[2] if len(args) == 3 else None)
    elif cmd == "extract" and len(args) == 3:
        d = os.path.dirname(os.path.abspath(args[2]))
        part = os.path.basename(args[2]) + ".part"
        got = extract_many(args[0], {args[1]: part}, d)
        os.replace(got[args[1]], args[2])
    elif cmd == "media" and len(args) == 2:
        media(args[0], args[1])
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
