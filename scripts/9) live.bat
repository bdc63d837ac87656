@echo off
rem 9) live: swap faces in real time from camera 0 with the workspace model (the most recently saved one in
rem workspace\model; --model Quick96, SAEHD, ... chooses). A window shows the swapped stream; Tab lists its keys,
rem Enter saves the settings as a merge config, Esc ends.
rem Extra arguments go to main.py (e.g. --input video.mp4 --output live.mp4, --virtual-camera, --no-window);
rem set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" live ^
    --model-dir "%WORKSPACE%\model" ^
    --input 0 ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
