#!/bin/sh
# Makes the archives the Dockerfile ADDs (binary files are not kept in git).
set -e
chmod 0600 tree/inner/i.txt
chmod 0750 tree/inner
ln -sf t1.txt tree/t1-link
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf tree.tar -C tree .
gzip -n -9 <tree.tar >tree.tar.gz
rm -rf tree
