@echo off
rem 3) extract images from video data_dst FULL FPS: write every frame of workspace/data_dst.* into
rem workspace/data_dst. Asks the image format.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" videoed extract-video ^
    --input-file "%WORKSPACE%\data_dst.*" ^
    --output-dir "%WORKSPACE%\data_dst" ^
    --fps 0 ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
