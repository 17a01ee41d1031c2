# appliance: nothing built yet
