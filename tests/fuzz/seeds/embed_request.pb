
the dog
catsg_d8