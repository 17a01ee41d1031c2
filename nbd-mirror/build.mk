# nbd-mirror: nothing built yet
