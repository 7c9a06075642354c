"""Registries the images are pushed to (from this workstation, where the images are).

Each entry of `isaac_registries`:
  address       host[:port] of the registry (no scheme)
  prefix        repository path in front of the image name, e.g. "robotics/isaac"
  ca_file       the registry's CA certificate, when it is not in the system's trust store
  plain_http    True only for a loopback registry without TLS (refused for any other address)
  username + password_env and/or password_file
                credentials: the password or token is read from that environment variable
                when the deploy runs, else from that file (mode 0600, on this machine);
                without them, your Docker config's credentials are used (`docker login`,
                credential helpers). Passwords never go in this file. The same entry gives
                the login for base images pulled from that address (isaac_base_source).

Images: `isaac_push_profiles` (default ("ext",), the production image the clusters run).
"""

REGISTRIES = {
    "lab": {
        "address": "registry.example.org:5000",
        "prefix": "robotics/isaac",
        "ca_file": "~/.config/isaac-deploy/lab-registry-ca.crt",
        "username": "robot",
        "password_env": "LAB_REGISTRY_TOKEN",
    },
}

local = [
    (
        "@local",
        {
            "isaac_extension_name": "ext_template",
            "isaac_profiles": ("ext",),
            "isaac_push_profiles": ("ext",),
            "isaac_registries": REGISTRIES,
        },
    )
]
