# volume-id: nothing built yet
