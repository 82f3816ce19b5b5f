#!/bin/sh
# Installs the Debian packages whose photographs make up the default training and evaluation
# catalogue (tritonsplat_inpaint/data.py: INSTALL_PACKAGES); run as root, or with sudo.
# The first run of the catalogue then extracts the pictures packed inside GCompris's resource
# files and Jigzo's puzzles into ~/.cache/tritonsplat/photographs ($TRITONSPLAT_CACHE/photographs).
set -eu
PACKAGES="plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 gcompris-qt-data tuxpaint-data palapeli-data jigzo-data"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $PACKAGES
