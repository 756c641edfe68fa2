#!/bin/sh
# Recipe for the clabgen/node root filesystem: a minbase Debian plus packages.txt.
# Usage: build.sh ROOTFS SUITE MIRROR CACHE_DIR
# Run by clabgen.images (scripts/build-images.sh); its text is part of the image
# tag hash, so editing this file rebuilds the image.
set -eu
rootfs=$1 suite=$2 mirror=$3 cache=$4
here=$(cd "$(dirname "$0")" && pwd)
pkgs=$(grep -v '^[[:space:]]*#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')

mkdir -p "$cache"
# --cache-dir keeps the downloaded .debs between builds (a changed recipe
# reuses them); debootstrap copies them into the target, removed below.
DEBIAN_FRONTEND=noninteractive debootstrap --variant=minbase --include="$pkgs" \
    --cache-dir="$cache" --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$rootfs" "$mirror"

# Keep the image small: no docs, man pages, locales, apt lists or package cache.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
       "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
       "$rootfs"/tmp/* "$rootfs"/var/tmp/*
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
find "$rootfs"/usr/lib/python3* -name '__pycache__' -type d -prune -exec rm -rf {} +
# The engine provides these at run time.
: > "$rootfs"/etc/hostname
rm -f "$rootfs"/etc/resolv.conf
# Same bytes for the same packages: no machine-id, no random ssh/host state.
: > "$rootfs"/etc/machine-id
