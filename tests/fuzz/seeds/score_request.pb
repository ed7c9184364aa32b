

a bc