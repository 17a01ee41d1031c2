# fuse-share: nothing built yet
